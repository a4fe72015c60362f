"""Identifiers and strings from a spec can never inject code into the emitted model.py.

Labels, block names, network names, comments, string parameters, -D values and the
spec's file name carry quotes, newlines, backslashes, ``__import__``, Python keywords,
names of Python built-ins and of the emitted helpers, and non-ASCII text. For each spec
the emitted source must parse; its top level may hold only the docstring, the torch
imports, the expected classes and helper functions and ``ROOT = "..."``; importing it
must run nothing but the class bodies; and the module must build, run, and name its
state_dict entries exactly as the spec's labels say.
"""

from __future__ import annotations

import ast
import re
import sys
import types

import pytest
import torch

from udnet.backends.pytorch.codegen import Emitter
from udnet.backends.pytorch.helpers import HELPER_SOURCES
from udnet.errors import Source
from udnet.pipeline import build_ir

PAYLOAD = "__import__('os').system('echo pwned')"

#: Every name a runtime helper may define at the top level of model.py.
HELPERS = set(re.findall(r"^(?:def|class) (\w+)", "\n".join(HELPER_SOURCES), re.MULTILINE))

#: Comments are emitted only as the docstrings of the definitions right below them; this one
#: (a blank line away from the network) carries every kind of quote and the payload.
COMMENT = "# \"\"\" ''' \\ " + PAYLOAD + " \u00e9 \u210c \u202e \U0001f600 \x00\n"

#: The same comment right above a block and a network: their docstrings, escaped.
DOCS = (
    COMMENT + "#\n# \"\"\"\n" + COMMENT.replace("\n", "\\\n") + "block B() { relu }\n"
    + COMMENT + "network N(input = [3, 8, 8]) { b: B() }\n"
)

LABELS = (
    COMMENT
    + r'''
network N(input = [3, 8, 8]) {
    class: conv(4, 3, pad = 1)   # """; import os; """
    import: relu
    None: bn
    lambda: {
        def: conv(4, 1)
        return: relu
    }
    __x: conv(4, 1)
    _x: relu
    self: identity
    x: identity
    1: relu
    print: tanh
    exec: identity
    super: identity
    match: identity
    __import_: identity
    for i in 1..3 { while{i}: conv(4, 1) }
    global: { nonlocal: relu }
    ROOT: relu
    nn: identity
    torch: identity
    gap
    True: linear(3)
}
'''
)

BLOCK_NAMES = r"""
block class(k) { conv: conv(k, 1) }
block None() { relu }
block __import__() { relu }
block exec() { relu }
block ROOT() { relu }
block torch() { relu }
block nn() { relu }
block conv2d() { relu }
block Join() { relu }
block init_weight() { relu }
block forward() { relu }
block training() { relu }
block __init__() { relu }
block __class__() { relu }
block __x() { relu }
block os() { relu }
block Module() { relu }
block lambda() { relu }
network N(input = [3, 8, 8]) {
    class(4)
    class(6)
    None
    __import__
    exec
    ROOT
    torch
    nn
    conv2d
    Join
    init_weight
    forward
    training
    __init__
    __class__
    __x
    os
    Module
    lambda
}
"""

STRINGS = r"""
block Mode(s) {
    if s == "a" { relu } else { tanh }
}
network N(doc = "\"\"\" + __import__('os').system('echo pwned') + \"\"\"",
          lines = "line1\nline2\\", quote = "\" ' \\\" \\",
          uni = "é ℌ 😀 " , ctrl = "  ",
          names = ["\"", "\n", "ℌ"], input = [3, 8, 8]) {
    a: Mode("a")
    b: Mode("\"; import os; \"")
    c: Mode("ℌ")
    d: Mode("H")
    e: Mode("\n__import__('os')\n")
    up: upsample(2, mode = "nearest")
}
"""

# The control characters are real ones: BEL, ESC and a bidi override in a string literal.
STRINGS = STRINGS.replace('ctrl = "  "', 'ctrl = "\x07\x1b[2J\u202e"')


def _network(name: str) -> str:
    return f"network {name}(input = [3, 8, 8]) {{\n    conv1: conv(4, 3)\n    relu\n}}\n"


CASES = {
    "labels": (LABELS, None),
    "block-names": (BLOCK_NAMES, None),
    "strings": (STRINGS, None),
    "docs": (DOCS, None),
    "define-strings": (
        STRINGS,
        {"doc": '"""\n' + PAYLOAD + '\n"""', "lines": "\\", "quote": "'''\"\"\"", "uni": "\u2028\u2029\x85"},
    ),
    **{f"network-{n}": (_network(n), None) for n in ("exec", "__import__", "ROOT", "class", "nn", "Module")},
}

SPEC_NAMES = ["spec.ud", 'evil""".ud', "evil'''\n" + PAYLOAD + "\n#.ud", "back\\slash\\.ud", "é ℌ 😀\u202e.ud"]


def emit(text: str, defines=None, spec_name: str = "spec.ud") -> tuple[str, set[str]]:
    ir = build_ir(Source("hostile.ud", text), defines=defines)
    em = Emitter(ir, spec_name)
    code = em.emit()
    return code, {cd.name for cd in em.order}


_ALLOWED_DEFAULTS = (ast.Constant, ast.Tuple, ast.UnaryOp)


def check_structure(code: str, classes: set[str]) -> ast.Module:
    """Only definitions at the top level, nothing that runs on import, no dangerous names."""
    tree = ast.parse(code)
    compile(code, "<model.py>", "exec")
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # the docstring
    docstrings = {id(body[0].value)}
    defined: set[str] = set()
    for node in body[1:]:
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["torch"] and node.names[0].asname is None
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "torch" and [a.name for a in node.names] == ["nn"] and node.level == 0
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            (target,) = node.targets
            assert isinstance(target, ast.Name) and target.id == "ROOT"
            assert isinstance(node.value, ast.Constant) and node.value.value in classes
        else:
            raise AssertionError(f"top-level statement {ast.dump(node)[:200]}")
    assert classes <= defined, classes - defined
    assert defined <= classes | HELPERS, defined - classes - HELPERS
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            assert not node.keywords, "no metaclass or class keywords"
            assert all(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
            for i, stmt in enumerate(node.body):
                if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    docstrings.add(id(stmt.value))
                    continue
                assert isinstance(stmt, ast.FunctionDef), ast.dump(stmt)[:200]
        if isinstance(node, ast.FunctionDef):
            assert all(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
            args = node.args
            for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
                assert isinstance(default, _ALLOWED_DEFAULTS), ast.dump(default)  # evaluated at import
            assert node.returns is None and all(a.annotation is None for a in args.args)
            if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                docstrings.add(id(node.body[0].value))
        if isinstance(node, ast.Name) and node.id not in defined:  # a block named os is a class os
            assert node.id not in {
                "eval", "exec", "compile", "__import__", "open", "globals", "locals", "vars", "setattr",
                "delattr", "__builtins__", "os", "sys", "subprocess", "importlib", "builtins", "breakpoint",
                "input", "print", "exit", "quit",
            }, node.id  # fmt: skip
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr == "__init__", node.attr
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            assert isinstance(node.args[0], ast.Name) and node.args[0].id == "self"
            assert isinstance(node.args[1], (ast.Constant, ast.JoinedStr))
    # A block's string argument is data: a literal passed to its class or compared with one
    # (``Mode(s="...")``, ``if s == "a":``), escaped by the emitter and parsed back intact.
    data: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            data.update(id(a) for a in node.args if isinstance(a, ast.Constant))
            data.update(id(k.value) for k in node.keywords if isinstance(k.value, ast.Constant))
        elif isinstance(node, ast.Compare):
            data.update(id(c) for c in [node.left, *node.comparators] if isinstance(c, ast.Constant))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | data:
            # Otherwise spec text reaches code only as labels (validated identifiers) and helper keywords.
            assert re.fullmatch(r"[A-Za-z0-9_]*", node.value), repr(node.value)
    return tree


def import_quietly(code: str, name: str) -> types.ModuleType:
    """Import the emitted source, recording every function it runs and every builtin it calls."""
    filename = f"<udnet-injection-test {name}>"
    module = types.ModuleType(f"udnet_injection_{re.sub(r'[^A-Za-z0-9_]', '_', name)}")
    calls: list[str] = []

    def profile(frame, event, arg):
        if frame.f_code.co_filename != filename:
            return
        if event == "call":
            calls.append(frame.f_code.co_name)
        elif event == "c_call":
            calls.append("builtin:" + getattr(arg, "__name__", "?"))

    code_obj = compile(code, filename, "exec")
    sys.setprofile(profile)
    try:
        exec(code_obj, module.__dict__)
    finally:
        sys.setprofile(None)
    classes = {k for k, v in module.__dict__.items() if isinstance(v, type)}
    for c in calls:
        # the module body itself, class bodies (code named after the class), and the
        # builtin that creates classes; nothing else may run at import
        assert c in ("<module>", "builtin:__build_class__") or c in classes, f"ran {c} at import"
    return module


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_spec_emits_safe_source(case):
    text, defines = CASES[case]
    code, classes = emit(text, defines)
    check_structure(code, classes)
    module = import_quietly(code, case)
    model = module.__dict__[module.ROOT]()
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 8, 8))
    assert out.shape[0] == 2


@pytest.mark.parametrize("spec_name", SPEC_NAMES)
def test_hostile_file_name(spec_name):
    code, classes = emit(_network("N"), spec_name=spec_name)
    tree = check_structure(code, classes)
    doc = ast.get_docstring(tree)
    assert doc.startswith("N, compiled by udnet from ")
    import_quietly(code, "name")


def test_hostile_comments_stay_inside_their_docstrings():
    code, classes = emit(DOCS)
    tree = check_structure(code, classes)
    docs = [ast.get_docstring(n) for n in tree.body if isinstance(n, ast.ClassDef)]
    assert len(docs) == 2 and all(PAYLOAD.replace('"', "'") in d for d in docs)
    assert docs[0].count("\n") == 3 and code.isascii()  # the block's four comment lines, the blank one kept


def test_payload_only_in_docstrings():
    """The payload text survives only inside docstrings, escaped, never as code."""
    code, classes = emit(STRINGS, {"doc": '"""\n' + PAYLOAD + "\n"})
    tree = check_structure(code, classes)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr != "system"
    assert "\x1b" not in code and "\u202e" not in code and "\x07" not in code  # escaped, not raw
    assert code.isascii()


def test_labels_become_the_state_dict_keys():
    """Keyword labels and labels Python would mangle (__x) still name the parameters exactly."""
    code, _ = emit(LABELS)
    module = import_quietly(code, "labels-keys")
    keys = set(module.__dict__[module.ROOT]().state_dict())
    for key in ("class.weight", "None.weight", "None.running_mean", "lambda.def.weight", "__x.weight",
                "while1.weight", "while3.weight", "True.weight", "True.bias"):  # fmt: skip
        assert key in keys, sorted(keys)
    assert not any("_N__" in k for k in keys), "name mangling leaked into the state_dict"


def test_block_names_never_shadow_helpers_or_module_attributes():
    code, _ = emit(BLOCK_NAMES)
    module = import_quietly(code, "block-names")
    assert callable(module.conv2d) and isinstance(module.ROOT, str)
    model = module.__dict__[module.ROOT]()
    assert isinstance(model.training, bool) and callable(model.forward)
    children = dict(model.named_children())
    assert "forward" not in children and "training" not in children  # renamed automatic labels
    assert not any(n.startswith("__") for n in children)
    with torch.no_grad():
        model(torch.zeros(1, 3, 8, 8))


def test_reserved_labels_cover_every_nn_module_attribute():
    """A submodule named like an nn.Module attribute (_modules, compile, register_forward_hook,
    ...) breaks the module, so such labels are refused; this catches new torch attributes."""
    from udnet.reserved import MODULE_ATTRS

    module = torch.nn.Module()
    names = {n for n in set(dir(module)) | set(vars(module)) if not (n.startswith("__") and n.endswith("__"))}
    assert names <= MODULE_ATTRS, sorted(names - MODULE_ATTRS)
