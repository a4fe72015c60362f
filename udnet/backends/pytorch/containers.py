"""Module lists: the containers that dotted labels (``convs.0:``, ``features.1.conv.0:``)
make inside an emitted class.

A container holds labelled modules and runs nothing; the class around it calls them.
One whose entries are numbered 0, 1, ..., n - 1 in every instance of the class is an
``nn.ModuleList`` (read as ``self.convs[0]``), any other a plain ``nn.Module``. Either
way the state_dict keys are the dotted labels, as in torchvision's nn.Sequential and
nn.ModuleList layouts.
"""

from __future__ import annotations

import keyword
import re

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Containers:
    """The containers of one class, from the labels of its instances' children."""

    def __init__(self, instances: list, reserved: set[str]):
        self.reserved = reserved
        keys: dict[str, list[set[str]]] = {}
        for k, inst in enumerate(instances):
            for child in inst.children:
                parts = child.label.split(".")
                for depth in range(1, len(parts)):
                    path = ".".join(parts[:depth])
                    per = keys.setdefault(path, [set() for _ in instances])
                    per[k].add(parts[depth])
        self.lists = {p: all(_numbered(s) for s in per) for p, per in keys.items()}
        self.made: set[str] = set()

    def make_calls(self, label: str) -> list[tuple[str, str, list[str]]]:
        """(prefix, callable, arguments) of the statements that make the containers a
        module at dotted ``label`` goes into, those not made yet: each is made where it is
        first used, so the state_dict keys come in the order the spec first uses them."""
        calls = []
        parts = label.split(".")
        for depth in range(1, len(parts)):
            path = ".".join(parts[:depth])
            if path in self.made:
                continue
            self.made.add(path)
            make = "nn.ModuleList" if self.lists[path] else "nn.Module"
            outer, _, name = path.rpartition(".")
            if not outer and self._plain(name):
                calls.append((f"self.{name} = ", make, []))
            else:
                calls.append(("", f"{self.access(outer, True)}.add_module", [f'"{name}"', f"{make}()"]))
        return calls

    def access(self, label: str, building: bool = False) -> str:
        """The expression for the module at dotted ``label`` inside ``self``. While the
        lists are ``building`` (in ``__init__``) an entry is read by name: a list indexes
        only once every entry before it is in."""
        outer, _, name = label.rpartition(".")
        if not outer:
            return f"self.{name}" if self._plain(name) else f'getattr(self, "{name}")'
        base = self.access(outer, building)
        if self.lists.get(outer) and not building:
            return f"{base}[{name}]"
        return f"{base}.{name}" if self._plain(name) else f'getattr({base}, "{name}")'

    def register(self, label: str) -> tuple[str, str | None]:
        """How to put a module at dotted ``label``: (target, None) to assign it to
        ``target``, or (callable, name) to call ``callable(name, module)``."""
        outer, _, name = label.rpartition(".")
        if not self.lists.get(outer) and self._plain(name):
            return f"{self.access(outer, True)}.{name}", None
        return f"{self.access(outer, True)}.add_module", f'"{name}"'

    def loop_access(self, prefix: str, index: str, suffix: str) -> str:
        """The module labelled ``prefix{index}suffix``, where ``prefix`` names its container."""
        outer, _, lead = prefix.rpartition(".")
        if self.lists.get(outer) and not lead and not suffix:
            return f"{self.access(outer)}[{index}]"
        return f'getattr({self.access(outer)}, f"{lead}{{{index}}}{suffix}")'

    def loop_register(self, prefix: str, index: str, suffix: str) -> tuple[str, str]:
        outer, _, lead = prefix.rpartition(".")
        return f"{self.access(outer, True)}.add_module", f'f"{lead}{{{index}}}{suffix}"'

    def _plain(self, name: str) -> bool:
        return bool(_IDENT.fullmatch(name)) and not keyword.iskeyword(name) and not name.startswith("__") \
            and name not in self.reserved


def _numbered(keys: set[str]) -> bool:
    return all(k.isdigit() and str(int(k)) == k for k in keys) and {int(k) for k in keys} == set(range(len(keys)))
