"""One namespace per scope of the emitted code.

A scope knows every name it holds: user labels (module attributes, which are
state_dict keys and keep their names exactly), class and helper names, the
builtins and imports the emitted code reads. Every name the emitter invents
(a join's submodule, a constructor parameter and the plain attribute it is stored
in) comes from ``Namespace.fresh`` and yields to all of them.
"""

from __future__ import annotations

from typing import Iterable

#: Attributes and methods of ``torch.nn.Module`` (torch 2.x): a plain attribute of
#: one of these names would shadow it (``self.to = 3`` breaks ``model.to``).
MODULE_ATTRS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "training", "type", "xpu", "zero_grad",
})  # fmt: skip


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
