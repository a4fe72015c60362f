"""Constructor fields for the ops no instance built: a branch no instance takes (Stage's
Bottleneck in a ResNet-18). The compiled model never runs them; they make the class
complete for other arguments, and a configuration that runs them is checked when it is
compiled."""

from __future__ import annotations

from udnet.backends.pytorch.expr import Lit
from udnet.backends.pytorch.mirror.check import CHANNEL_FIELDS
from udnet.backends.pytorch.mirror.program import MirrorClass, Module, OpCtor, Unsupported
from udnet.ops import OPS, ArgError
from udnet.ops.spec import REQUIRED


def unchecked_fields(mc: MirrorClass) -> None:
    """Constructor fields for the ops no instance built (a branch no instance takes):
    the input's channels, the spec's argument of the field's name, else the op's
    value for its defaults. The compiled model never runs them; they make the class
    complete for other arguments."""

    def walk(stmts: list) -> None:
        for s in stmts:
            if isinstance(s, Module) and isinstance(s.ctor, OpCtor) and s.ctor.fields is None:
                _synthesize(s.ctor)
            for sub in (getattr(s, "body", None), getattr(s, "orelse", None)):
                if sub:
                    walk(sub)

    walk(mc.init)


_PLACEHOLDER = {"pos_int": 1, "int": 0, "pair": 0, "pos_pair": 1, "opt_pair": None, "float": 0.0,
                "opt_number": None, "prob": 0.0, "bool": False}


def _synthesize(ctor: OpCtor) -> None:
    spec = OPS[ctor.op]
    given = {}
    for a in spec.args:
        if a.default is REQUIRED:
            given[a.name] = a.choices[0] if a.kind == "choice" else _PLACEHOLDER[a.kind]
    try:
        attrs = spec.bind([], given)
    except ArgError as err:
        raise Unsupported(f"{ctor.op}: {err.message}") from None
    _, module, fields = spec.torch.describe((8, 8, 8) if 3 in spec.rank else (8,), attrs)
    ctor.module = module
    ctor.inplace = False
    ctor.fields = []
    for hint, kw, default, same_as, value in fields:
        if hint in CHANNEL_FIELDS:
            expr = ctor.channels
        elif hint in ctor.args:
            expr = ctor.args[hint]
        else:
            expr = Lit(value)
        ctor.fields.append((hint, kw, default, same_as, expr))
