"""Hardening of udnet's input and output: the parser-table cache, outputs that are open
descriptors, FIFOs, numeric flags, Ctrl-C, file names and line ends in messages."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import lark
import pytest

import udnet.frontend.parser as parser_mod
from udnet.cli import main
from udnet.errors import Source, Span, UdnetError
from udnet.frontend.parser import grammar_text
from udnet.pipeline import build_ir

ROOT = Path(__file__).resolve().parents[1]
GOOD = "network N(input = [3, 8, 8]) {\n    conv1: conv(4, 3, pad = 1)\n    relu\n}\n"
BAD_LINE_3 = ["network N(input = [3, 8, 8]) {", "    # a comment", "    x = bogus(1)", "}", ""]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "net.ud"
    path.write_text(GOOD, encoding="utf-8")
    return path


# --- 1. the parser-table cache: no pickle from a place another user can write -------------


class _Plant:
    """A pickle that creates ``marker`` when it is loaded: stands for an attacker's code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture
def fresh_parser(tmp_path, monkeypatch):
    """A private temp dir and cache home, and no parser built yet in this process."""
    shared_tmp = tmp_path / "shared-tmp"
    shared_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    parser_mod._parser.cache_clear()
    yield shared_tmp
    parser_mod._parser.cache_clear()


def _parses() -> bool:
    module = parser_mod.parse(Source("net.ud", GOOD))
    return module is not None


def test_parser_cache_is_not_in_the_shared_temp_dir(fresh_parser):
    assert _parses()
    assert sorted(p.name for p in fresh_parser.iterdir()) == []


def test_pickle_planted_in_the_shared_temp_dir_is_never_loaded(fresh_parser, tmp_path):
    # Where Lark's cache=True looks: $TMPDIR/.lark_cache_<user>_<sha256>_<py>.tmp, with the
    # sha256 of the grammar and the options (as udnet used to pass them).
    options = {"parser": "lalr", "start": ["start", "expr"], "propagate_positions": True,
               "maybe_placeholders": True, "cache": True}
    text = grammar_text() + "".join(k + str(v) for k, v in options.items()) + lark.__version__ + str(sys.version_info[:2])
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    marker = tmp_path / "planted-code-ran"
    import getpass

    for user in {getpass.getuser(), "unknown"}:
        planted = fresh_parser / f".lark_cache_{user}_{sha}_{sys.version_info[0]}_{sys.version_info[1]}.tmp"
        planted.write_bytes(sha.encode() + b"\n" + pickle.dumps(_Plant(marker)))
    assert _parses()
    assert not marker.exists(), "a pickle from the shared temp dir was loaded"


def _cache_file(tmp_path) -> Path:
    files = list((tmp_path / "cache-home" / "udnet").glob("*.pickle"))
    assert len(files) == 1, files
    return files[0]


def test_parser_cache_is_private_and_reused(fresh_parser, tmp_path, monkeypatch):
    assert _parses()
    cache = _cache_file(tmp_path)
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert lark.__version__ in cache.name
    loads = []
    real_load = parser_mod.Lark.load.__func__
    monkeypatch.setattr(parser_mod.Lark, "load", classmethod(lambda cls, f: loads.append(1) or real_load(cls, f)))
    parser_mod._parser.cache_clear()
    assert _parses()
    assert loads == [1]


def _plant_over(cache: Path, marker: Path) -> None:
    cache.write_bytes(pickle.dumps(_Plant(marker)))


UNSAFE_CACHES = {
    "directory-writable-by-others": lambda d, f, m: (_plant_over(f, m), d.chmod(0o777)),
    "directory-writable-by-group": lambda d, f, m: (_plant_over(f, m), d.chmod(0o770)),
    "file-writable-by-others": lambda d, f, m: (_plant_over(f, m), f.chmod(0o666)),
    "file-is-a-link": lambda d, f, m: (
        _plant_over(d.parent / "elsewhere.pickle", m), f.unlink(), f.symlink_to(d.parent / "elsewhere.pickle")),
    "directory-is-a-link": lambda d, f, m: (
        d.rename(d.parent / "real"), _plant_over(d.parent / "real" / f.name, m), d.symlink_to(d.parent / "real")),
}


@pytest.mark.parametrize("how", sorted(UNSAFE_CACHES))
def test_planted_parser_cache_that_others_could_write_is_ignored(fresh_parser, tmp_path, how):
    assert _parses()  # the cache now exists: the attack replaces it
    cache = _cache_file(tmp_path)
    marker = tmp_path / "planted-code-ran"
    UNSAFE_CACHES[how](cache.parent, cache, marker)
    parser_mod._parser.cache_clear()
    assert _parses()
    assert not marker.exists(), f"an unsafe cache ({how}) was loaded"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give files away")
@pytest.mark.parametrize("what", ["directory", "file"])
def test_planted_parser_cache_owned_by_another_user_is_ignored(fresh_parser, tmp_path, what):
    assert _parses()
    cache = _cache_file(tmp_path)
    marker = tmp_path / "planted-code-ran"
    _plant_over(cache, marker)
    os.chown(cache.parent if what == "directory" else cache, 12345, 12345)
    parser_mod._parser.cache_clear()
    assert _parses()
    assert not marker.exists()


# --- 2. outputs that are open descriptors are written to, never replaced ---------------------


STREAM_PATHS = ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "link-to-stdout", "/dev/stderr", "/dev/fd/2"]


@pytest.mark.parametrize("target", STREAM_PATHS)
def test_appending_redirect_of_dev_stdout_keeps_the_log(spec, tmp_path, target):
    if not os.path.exists("/dev/stdout") or (target.startswith("/proc") and not os.path.exists("/proc/self/fd")):
        pytest.skip("no /dev/stdout or /proc on this system")
    if target == "link-to-stdout":
        (tmp_path / target).symlink_to("/dev/stdout")
        target = str(tmp_path / target)
    log = tmp_path / "log.txt"
    log.write_bytes(b"earlier line\n")
    inode = log.stat().st_ino
    to_stderr = target.endswith(("stderr", "/2"))
    with open(log, "ab") as f:  # `>> log.txt` (or `2>> log.txt`)
        r = subprocess.run(
            [sys.executable, "-m", "udnet", "compile", str(spec), "-o", target],
            stdout=subprocess.DEVNULL if to_stderr else f, stderr=f if to_stderr else subprocess.PIPE,
            cwd=tmp_path, env=subprocess_env(), timeout=120, check=False,
        )
    assert r.returncode == 0, r.stderr
    data = log.read_bytes()
    assert data.startswith(b'earlier line\n"""N, compiled by udnet'), data[:200]
    assert log.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".udnet-")] == []


def test_dev_null_output_stays_a_device(spec):
    rc, _, err = run("compile", str(spec), "-o", os.devnull)
    assert rc == 0, err
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


# --- 12. numeric flags, Ctrl-C, FIFOs, file names, line ends, empty -o ---------------------

LIMIT_FLAGS = ["--max-nodes", "--max-nesting", "--max-source-bytes", "--max-elements", "--max-depth", "--max-steps"]
HUGE = [str(2**63 - 1), str(10**30)]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("flag", LIMIT_FLAGS)
def test_huge_limit_flag_is_no_traceback(spec, flag, value):
    rc, out, err = run("check", str(spec), flag, value)
    assert rc == 0, err
    assert "network N ok" in out


@pytest.mark.parametrize("value", ["0", "-1", str(-(10**30))])
@pytest.mark.parametrize("flag", LIMIT_FLAGS)
def test_zero_or_negative_limit_flag_is_a_usage_error(spec, flag, value):
    rc, _, err = run("check", str(spec), flag, value)
    assert rc == 2
    assert err.startswith(f"udnet: error: {flag} must be positive")


@pytest.mark.parametrize(
    "args",
    [
        ("compile", "--fractal-column", "0"), ("compile", "--fractal-column", str(2**63 - 1)),
        ("compile", "--fractal-column", "-1"), ("compile", "--fractal-column", str(10**30)),
        ("summary", "--batch", "0"), ("summary", "--batch", "-5"), ("summary", "--depth", "-1"),
        ("draw", "--depth", "-1"),
    ],
)
def test_other_numeric_flags_out_of_range_are_usage_errors(spec, args):
    command, *rest = args
    rc, _, err = run(command, str(spec), *rest)
    assert rc == 2, err
    assert err.startswith("udnet: error: ") and "Traceback" not in err


@pytest.mark.parametrize("args", [("summary", "--batch", str(10**30)), ("summary", "--depth", str(2**63 - 1))])
def test_other_numeric_flags_huge_values_work(spec, args):
    command, *rest = args
    rc, _, err = run(command, str(spec), *rest)
    assert rc == 0, err


def _console_script_entry() -> tuple[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        module, _, func = tomllib.load(f)["project"]["scripts"]["udnet"].partition(":")
    return module, func


# The `udnet` console script as pip writes it, for the entry pyproject.toml names.
CONSOLE_SCRIPT = "import sys\nfrom {module} import {func}\nsys.exit({func}())\n"

# Ctrl-C while the n-th module is being imported once the entry module has started to
# run: a finder sends this process SIGINT at that import, as a terminal would.
INTERRUPT_AT_IMPORT = '''
import os, signal, sys
N = int(sys.argv.pop(1))
class Interrupt:
    seen = 0
    def find_spec(self, name, path=None, target=None):
        if ENTRY in sys.modules:
            Interrupt.seen += 1
            if Interrupt.seen == N:
                os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
'''


def test_ctrl_c_while_modules_import_exits_130_without_traceback(spec):
    module, func = _console_script_entry()
    hook = f"ENTRY = {module!r}\n" + INTERRUPT_AT_IMPORT
    entry = CONSOLE_SCRIPT.format(module=module, func=func)
    # How many imports happen from the entry on (it differs between machines): N = 0 never fires.
    probe = hook + "import atexit\natexit.register(lambda: print('imports', Interrupt.seen, file=sys.stderr))\n"
    seen = subprocess.run(
        [sys.executable, "-c", probe + entry, "0", "check", str(spec)],
        capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False,
    )
    assert seen.returncode == 0, seen.stderr
    total = int(seen.stderr.rsplit("imports", 1)[1])
    assert total > 5
    for n in sorted({1, 2, 3, total // 4, total // 2, 3 * total // 4, total}):
        r = subprocess.run(
            [sys.executable, "-c", hook + entry, str(n), "check", str(spec)],
            capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False,
        )
        assert "Traceback" not in r.stderr, f"interrupted at import {n} of {total}:\n{r.stderr}"
        assert r.returncode == 130, (n, r.returncode, r.stderr)


# Runs the entry once the interpreter is up, its entry module is imported and the test
# says go. An interrupt that comes before any udnet code runs (Python's start-up, runpy
# finding the module) is not udnet's to handle: it exits 99. One that escapes from udnet
# code prints its traceback. Once the entry has returned, SIGINT is blocked: Python's
# finalisation restores the default handler, and an interrupt landing there would kill the
# process (-2) after udnet's work is over, a race of the harness, not of udnet.
HARNESS = """
import os, signal, sys, traceback
import {module}
sys.stdout.write("ready\\n"); sys.stdout.flush()
try:
    sys.stdin.readline()
    {entry}
except KeyboardInterrupt as e:
    if any(os.sep + "udnet" + os.sep in f.filename for f in traceback.extract_tb(e.__traceback__)):
        raise
    sys.exit(99)
finally:
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
"""


@pytest.mark.parametrize("command", ["python -m udnet", "console script"])
def test_ctrl_c_soon_after_start_exits_130_without_traceback(spec, command):
    module, func = _console_script_entry()
    if command == "console script":
        entry = f"from {module} import {func}; sys.exit({func}())"
    else:
        entry = "import runpy; runpy.run_module('udnet', run_name='__main__', alter_sys=True)"
    codes = []
    for i in range(10):
        p = subprocess.Popen(
            [sys.executable, "-c", HARNESS.format(module=module, entry=entry), "check", str(spec)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(),
        )
        assert p.stdout.readline() == b"ready\n"
        p.stdin.write(b"go\n")
        p.stdin.flush()
        time.sleep(0.002 * i * i)  # 0 to 0.16 s: imports, then the command itself
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        assert b"Traceback" not in err, err.decode()
        assert p.returncode in (0, 99, 130), (p.returncode, err.decode())
        codes.append(p.returncode)
    assert 130 in codes, codes


CALLBACK_HARNESS = """
import os, signal, sys, weakref
import udnet.__main__
class Obj:
    pass
def callback(ref):  # the interrupt arrives while a weakref callback runs (as import-lock ones do)
    os.kill(os.getpid(), signal.SIGINT)
obj = Obj()
ref = weakref.ref(obj, callback)
del obj
for _ in range(10**7):
    pass
sys.exit(0)
"""


def test_ctrl_c_inside_a_weakref_callback_still_exits_130_without_traceback():
    # Python drops an exception raised in a callback; the interrupt must not be lost with it.
    r = subprocess.run(
        [sys.executable, "-c", CALLBACK_HARNESS], capture_output=True, env=subprocess_env(), timeout=120, check=False
    )
    assert b"Traceback" not in r.stderr, r.stderr.decode()
    assert r.returncode == 130, (r.returncode, r.stderr.decode())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_spec_without_a_writer_is_refused_not_waited_on_forever(tmp_path):
    fifo = tmp_path / "net.ud"
    os.mkfifo(fifo)
    r = subprocess.run(
        [sys.executable, "-m", "udnet", "check", str(fifo)],
        capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=60, check=False,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"udnet: error: cannot read {fifo}: it is a FIFO and nothing was written to it")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_spec_with_a_writer_is_read(tmp_path):
    fifo = tmp_path / "net.ud"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "w", encoding="utf-8") as f:  # waits for the reader
            f.write(GOOD)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        rc, out, err = run("check", str(fifo))
    finally:
        if writer.is_alive():  # the reader never came: let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)
    assert rc == 0, err
    assert "network N ok" in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_output_without_a_reader_is_refused_not_waited_on_forever(spec, tmp_path):
    fifo = tmp_path / "model.py"
    os.mkfifo(fifo)
    r = subprocess.run(
        [sys.executable, "-m", "udnet", "compile", str(spec), "-o", str(fifo)],
        capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(), timeout=60, check=False,
    )
    assert r.returncode == 2
    assert r.stderr.startswith(f"udnet: error: cannot write {fifo}: it is a FIFO with no reader")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


NASTY_NAMES = ["bad\x1b[31mred.ud", "two\nlines.ud", "bell\x07.ud", "bidi\u202e.ud"]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_file_names_in_error_locations_are_escaped(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n".join(BAD_LINE_3), encoding="utf-8")
    rc, _, err = run("check", str(path))
    assert rc == 1
    first = err.split("\n")[0]
    shown = str(path).encode("unicode_escape").decode("ascii")
    assert first.startswith(f"{shown}:3:9: error: unknown name 'bogus'"), err
    assert first.isprintable() and "\x1b" not in err
    assert len(err.splitlines()) == 3  # the message, the source line, the caret


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_file_names_in_cli_reports_are_escaped(tmp_path, name):
    path = tmp_path / name
    path.write_text(GOOD, encoding="utf-8")
    rc, out, err = run("check", str(path))
    assert rc == 0, err
    assert out.split("\n")[0].isprintable()
    missing = tmp_path / ("no-" + name)
    rc, _, err = run("check", str(missing))
    assert rc == 2
    lines = err.rstrip("\n").split("\n")  # the message and its hint, nothing forged by the name
    assert len(lines) == 2 and all(line.isprintable() for line in lines)
    assert lines[0].startswith("udnet: error: no such file: ") and lines[1].startswith("hint: ")


def test_span_prints_its_file_name_escaped():
    span = Span(Source("a\nb\x1b.ud", "x\n"), 1, 1, 1, 2)
    assert str(span) == "a\\nb\\x1b.ud:1:1"


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_line_and_column_are_right_for_any_line_end(tmp_path, newline):
    path = tmp_path / "net.ud"
    path.write_bytes(newline.join(BAD_LINE_3).encode("utf-8"))
    rc, _, err = run("check", str(path))
    assert rc == 1
    assert err == (
        f"{path}:3:9: error: unknown name 'bogus'\n"
        "    3 |     x = bogus(1)\n"
        "      |         ^~~~~\n"
    ), err


@pytest.mark.parametrize("newline", ["\r", "\r\n"])
def test_line_ends_in_source_strings_and_invalid_utf8(tmp_path, newline):
    with pytest.raises(UdnetError) as e:
        build_ir(newline.join(BAD_LINE_3))
    assert (e.value.span.line, e.value.span.col) == (3, 9)
    assert "    3 |     x = bogus(1)\n" in e.value.format()
    path = tmp_path / "net.ud"
    path.write_bytes(newline.join(BAD_LINE_3).encode("utf-8").replace(b"bogus", b"bo\xffus"))
    rc, _, err = run("check", str(path))
    assert rc == 1
    assert err.startswith(f"{path}:3:11: error: the file is not valid UTF-8"), err


@pytest.mark.parametrize("command", ["compile", "draw"])
def test_empty_output_path_says_so(spec, command):
    rc, _, err = run(command, str(spec), "-o", "")
    assert rc == 2
    assert err.startswith("udnet: error: -o: the output path is empty"), err
    assert "directory" not in err


def test_unknown_output_format_escapes_the_file_name(tmp_path, capsys):
    from udnet.cli import main

    out = tmp_path / "evil\n\x1b[2Jname.txt"
    assert main(["draw", str(ROOT / "specs" / "highway.ud"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "evil\\n\\x1b[2Jname.txt" in err
