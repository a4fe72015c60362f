"""One namespace per scope of the emitted code.

A scope knows every name it holds: user labels (module attributes, which are
state_dict keys and keep their names exactly), class and helper names, the
builtins and imports the emitted code reads. Every name the emitter invents
(a join's submodule, a constructor parameter and the plain attribute it is stored
in) comes from ``Namespace.fresh`` and yields to all of them.
"""

from __future__ import annotations

from typing import Iterable


class Namespace:
    """The names taken in one scope; ``fresh`` hands out generated names that collide with none."""

    def __init__(self, *taken: Iterable[str]):
        self.taken: set[str] = set()
        for names in taken:
            self.taken.update(names)

    def __contains__(self, name: str) -> bool:
        return name in self.taken

    def __iter__(self):
        return iter(self.taken)

    def claim(self, *names: str) -> None:
        """User names: kept exactly as they are."""
        self.taken.update(names)

    def fresh(self, base: str, numbered: bool = False) -> str:
        """``base`` if free, else ``base2``, ``base3``... (``numbered``) or ``base_``, ``base__``..."""
        name, k = base, 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}" if numbered else name + "_"
        self.taken.add(name)
        return name
