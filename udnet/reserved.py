"""Every name udnet reserves, in one place: the names a spec may not bind, the labels
that would break an nn.Module, and the names a generated name in model.py yields to.

The elaborator checks specs against the first two; the PyTorch backend draws every name
it invents (classes, constructor parameters, locals) around all of them.
"""

from __future__ import annotations

import builtins
import keyword

from udnet.backends.pytorch.helpers import HELPER_SOURCES, defined_names
from udnet.ops import OPS

#: The language's built-in functions (besides the ops and gate/join): calls, not bindable.
FUNCTIONS = ("len", "min", "max", "abs", "int", "float", "round", "sum")
#: Names that read the current tensor: a variable of such a name would hide them.
INTROSPECTION = ("channels", "height", "width", "shape")
#: The connections a spec calls by name: built-in functions too.
CONNECTIONS = ("gate", "join")


def reserved_kind(name: str) -> str | None:
    """What a built-in name is, for the error when a spec tries to bind it; None if it is free."""
    if name in OPS:
        return f"the built-in op {name}"
    if name in FUNCTIONS or name in CONNECTIONS:
        return f"the built-in function {name}"
    if name in INTROSPECTION:
        return f"the built-in '{name}' (it reads the current tensor)"
    return None


#: nn.Module's attributes and methods: a label or plain attribute of one of these names
#: would shadow it (``self.to = 3`` breaks ``model.to``), so labels may not take them.
MODULE_ATTRS = frozenset(
    "forward training parameters buffers children modules state_dict train eval to cuda cpu "
    "apply zero_grad register_buffer register_parameter add_module type float double half "
    "extra_repr named_modules named_parameters named_buffers named_children requires_grad_ "
    "load_state_dict get_submodule get_parameter get_buffer "
    # the rest of nn.Module's attributes (torch 2.x): a submodule named like one breaks the module
    "T_destination bfloat16 call_super_init compile dump_patches get_extra_state ipu mtia xpu "
    "register_backward_hook register_forward_hook register_forward_pre_hook register_full_backward_hook "
    "register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook "
    "register_module register_state_dict_post_hook register_state_dict_pre_hook set_extra_state "
    "set_submodule share_memory to_empty _apply _backward_hooks _backward_pre_hooks _buffers _call_impl "
    "_compiled_call_impl _forward_hooks _forward_hooks_always_called _forward_hooks_with_kwargs "
    "_forward_pre_hooks _forward_pre_hooks_with_kwargs _get_backward_hooks _get_backward_pre_hooks "
    "_get_name _is_full_backward_hook _load_from_state_dict _load_state_dict_post_hooks "
    "_load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook _modules _named_members "
    "_non_persistent_buffers_set _parameters _register_load_state_dict_pre_hook "
    "_register_state_dict_hook _replicate_for_data_parallel _save_to_state_dict _slow_forward "
    "_state_dict_hooks _state_dict_pre_hooks _version _wrapped_call_impl".split()
)

#: Python's keywords and builtins: a generated name of one of these would not parse or would hide it.
PYTHON_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))

#: What model.py itself binds or reads: its imports, ``self``, the loops' index ``i``, ``name``
#: (taken since the first emitter; kept so that generated names stay as they were), ``ROOT``
#: and every helper function and class: a generated name of one of these would hide it.
MODEL_NAMES = frozenset({"self", "torch", "nn", "i", "name", "ROOT"}).union(*map(defined_names, HELPER_SOURCES))

#: What a name the PyTorch backend invents must not be.
RESERVED_IN_MODEL = PYTHON_NAMES | MODEL_NAMES
