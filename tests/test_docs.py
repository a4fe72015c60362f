"""The documentation runs: every example in it is checked, every command in it is run.

Fenced blocks, by their info string (the word after the opening fence):

* ``ud``: a spec; it must pass ``udnet check`` (parse, elaborate, verify). Every ``.md``
  file in docs/ and README.md.
* ``ud-error``: a spec that must fail with a ``UdnetError``; a ``# error: TEXT`` comment in
  it names text the error message must contain.
* In README.md, docs/tutorial.md, docs/language.md and docs/architecture.md, in order, in a
  fresh temporary directory holding a copy of specs/:
  - a ``ud`` or ``ud-error`` block whose first line is ``# file: NAME`` is written to NAME,
    one whose first line is ``# append: NAME`` is appended to it (and checked as the
    whole file);
  - ``console``: each ``$ udnet ...`` line runs (other ``$`` lines, such as ``pip
    install``, are shown, not run); the lines after a command are its expected output:
    each must appear in what it prints, except ``...`` (elided lines). A command whose
    expected output holds ``error:`` must fail with exit status 1; any other must succeed;
  - ``python``: runs as a script (there, with this interpreter).
  A block whose info string also says ``skip`` is shown, not run; ``from=FILE`` says it
  is an excerpt of FILE (written by an earlier command), and must be found there verbatim.

No block goes unchecked silently (``test_every_block_is_run_or_marked_not_run``):

* every fence has an info string, one of ``ud``, ``ud-error``, ``console``, ``python`` and
  ``text``. ``text`` marks a block that is not code at all (a diagram, a grammar, program
  output quoted in prose): it is never run. Anything that is a command or code but must not
  run (installation, the whole test suite, benchmarks that take minutes) says ``skip``:
  ```` ```console skip ````;
* the commands of every file are run (all of docs/ and README.md, as above), and a
  ``console`` block that is not ``skip`` holds only ``$ udnet ...`` commands, at least one;
* a skipped ``$ python benchmarks/NAME.py --flag ...`` names a script that exists and
  flags it defines.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from udnet.errors import Source, UdnetError
from udnet.ops import OPS
from udnet.pipeline import build_ir

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ALL_MD = sorted(DOCS.glob("*.md")) + ([ROOT / "README.md"] if (ROOT / "README.md").exists() else [])
RUN = ALL_MD
LANGS = ("ud", "ud-error", "console", "python", "text")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                    re.M | re.S)


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    flags: list[str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path, bare: bool = False) -> list[Block]:
    """The fenced blocks of ``path``; with ``bare``, also those without an info string (lang "")."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        words = m.group("info").split() or [""]
        if not words[0] and not bare:
            continue
        indent = m.group("indent")
        body = "".join(line[len(indent):] if line.startswith(indent) else line
                       for line in m.group("body").splitlines(True))
        out.append(Block(path, text.count("\n", 0, m.start()) + 1, words[0], words[1:], body))
    return out


_FILE = re.compile(r"#\s*(file|append):\s*(\S+)\s*")


def file_marker(b: Block) -> tuple[str, str] | None:
    """("file" or "append", NAME) for a block whose first line is ``# file: NAME`` or ``# append: NAME``."""
    m = _FILE.fullmatch(b.text.split("\n", 1)[0])
    return (m.group(1), m.group(2)) if m else None


def spec_text(b: Block, files: dict[str, str]) -> str:
    """The spec a ud block stands for: its text, after the file it appends to (if any)."""
    mark = file_marker(b)
    if mark and mark[0] == "append":
        return files.get(mark[1], "") + b.text
    return b.text


def _ud_blocks(kind: str) -> list[tuple[Block, str]]:
    out = []
    for p in ALL_MD:
        files: dict[str, str] = {}
        for b in blocks(p):
            if b.lang not in ("ud", "ud-error"):
                continue
            text = spec_text(b, files)
            mark = file_marker(b)
            if mark:
                files[mark[1]] = text
            if b.lang == kind:
                out.append((b, text))
    return out


SPEC_BLOCKS = _ud_blocks("ud")
ERROR_BLOCKS = _ud_blocks("ud-error")


@pytest.mark.parametrize("block,text", SPEC_BLOCKS, ids=[b.where for b, _ in SPEC_BLOCKS])
def test_ud_examples_check(block, text):
    try:
        build_ir(Source(block.where, text))
    except UdnetError as err:
        pytest.fail(f"{block.where}: the example does not check:\n{err.format()}")


@pytest.mark.parametrize("block,text", ERROR_BLOCKS, ids=[b.where for b, _ in ERROR_BLOCKS])
def test_ud_error_examples_fail(block, text):
    with pytest.raises(UdnetError) as info:
        build_ir(Source(block.where, text))
    for want in re.findall(r"#\s*error:\s*(.+)$", block.text, re.M):
        assert want.strip() in info.value.format(), (block.where, info.value.format())


def test_there_are_examples():
    assert len(SPEC_BLOCKS) >= 20 and len(ERROR_BLOCKS) >= 10, (len(SPEC_BLOCKS), len(ERROR_BLOCKS))


# ---------------------------------------------------------------------------
# Commands


def _commands(block: Block) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a console block, each with its expected output lines."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line.rstrip())
    return out


def _run_udnet(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(cmd, comments=True)
    env = dict(os.environ, COLUMNS="100", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "udnet", *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def _run_doc(path: Path, tmp_path: Path) -> int:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    files: dict[str, str] = {}
    ran = 0
    for b in blocks(path):
        quoted = [f[len("from="):] for f in b.flags if f.startswith("from=")]
        if quoted:  # an excerpt of a file an earlier command wrote: it must be there verbatim
            text = (tmp_path / quoted[0]).read_text(encoding="utf-8")
            assert b.text in text, f"{b.where}: the excerpt is not in {quoted[0]}:\n{text}"
            ran += 1
        if "skip" in b.flags:
            continue
        if b.lang in ("ud", "ud-error"):
            mark = file_marker(b)
            if mark:
                text = spec_text(b, files)
                files[mark[1]] = text
                (tmp_path / mark[1]).write_text(text, encoding="utf-8")
        elif b.lang == "console":
            for cmd, expected in _commands(b):
                if not cmd.startswith("udnet "):
                    continue
                r = _run_udnet(cmd, tmp_path)
                printed = r.stdout + r.stderr
                fails = any("error:" in e for e in expected)
                want_rc = 1 if fails else 0
                assert r.returncode == want_rc, f"{b.where}: `{cmd}` exited {r.returncode}:\n{printed}"
                lines = [line.rstrip() for line in printed.splitlines()]
                for e in expected:
                    if e.strip() in ("", "...") :
                        continue
                    assert e in lines, f"{b.where}: `{cmd}` did not print\n{e}\nbut:\n{printed}"
                ran += 1
        elif b.lang == "python":
            script = tmp_path / f"_doc_{b.line}.py"
            script.write_text(b.text, encoding="utf-8")
            env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            r = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True,
                               timeout=120, env=env)
            assert r.returncode == 0, f"{b.where}: the python example failed:\n{r.stdout}\n{r.stderr}"
            ran += 1
    return ran


@pytest.mark.parametrize("path", ALL_MD, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_run_or_marked_not_run(path):
    for b in blocks(path, bare=True):
        assert b.lang in LANGS, f"{b.where}: a fenced block needs one of {', '.join(LANGS)} (text: never run)"
        if b.lang != "console":
            continue
        commands = [c for c, _ in _commands(b)]
        if "skip" in b.flags:
            for cmd in commands:
                argv = shlex.split(cmd)
                if argv[:1] == ["python"] and argv[1].startswith("benchmarks/"):
                    script = ROOT / argv[1]
                    assert script.exists(), f"{b.where}: no {argv[1]}"
                    source = script.read_text(encoding="utf-8") + (ROOT / "benchmarks" / "common.py").read_text()
                    for flag in (a for a in argv[2:] if a.startswith("--")):
                        assert f'"{flag}"' in source, f"{b.where}: {argv[1]} has no {flag}"
            continue
        assert commands, f"{b.where}: a console block that runs nothing: give its commands as `$ udnet ...`, " \
                         "or mark it `console skip`"
        for cmd in commands:
            assert cmd.startswith("udnet "), f"{b.where}: `{cmd}` would not run: mark the block `console skip`"


@pytest.mark.parametrize("path", [p for p in RUN if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_commands_run(path, tmp_path):
    ran = _run_doc(path, tmp_path)
    runnable = [b for b in blocks(path) if b.lang in ("console", "python") and "skip" not in b.flags]
    assert ran >= len(runnable), (ran, len(runnable))
    if path.name == "tutorial.md":
        assert ran >= 8, ran


def test_tutorial_covers_the_whole_workflow():
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    commands = [c for b in blocks(DOCS / "tutorial.md") if b.lang == "console" for c, _ in _commands(b)]
    for verb in ("check", "summary", "draw", "compile"):
        assert any(c.startswith(f"udnet {verb} ") for c in commands), verb
    assert "udnet.load(" in text and "backward()" in text


def test_language_reference_covers_every_op_and_argument():
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    for spec in OPS.values():
        assert f"`{spec.signature()}`" in text, f"docs/language.md lacks the signature `{spec.signature()}`"
    for word in ("gate(h, x, t)", "join(", "++", "|>", "-D", "--network", "limits.md", "channels", "height",
                 "width", "shape", "assert", "return", "for ", "if ", "else"):
        assert word in text, word
