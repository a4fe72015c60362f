"""Output files are written atomically (udnet/output.py): a temporary file in the target's
directory, then a rename. A failing run leaves an existing output byte-identical and no
temporary file behind; an output path that cannot be written is a clear usage error.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import stat
import threading
import time
from pathlib import Path

import pytest

import udnet.output
from udnet.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
GOOD = "network N(input = [3, 8, 8]) {\n    conv1: conv(4, 3, pad = 1)\n    relu\n}\n"
OLD = b"# an earlier model.py: must survive every failed run byte for byte\n\x00\xff"


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".udnet-"))


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "net.ud"
    path.write_text(GOOD, encoding="utf-8")
    return path


def _commands():
    # draw is tested where the command exists; its output here is DOT (no renderer needed)
    out = [("compile", "model.py")]
    if "draw" in COMMANDS:
        out.append(("draw", "net.dot"))
    return out


FAILURES = {
    "syntax-error": ("network N(input = [3, 8, 8]) {\n    conv(4, 3\n}\n", ()),
    "shape-error": ("network N(input = [3, 8, 8]) {\n    linear(10)\n}\n", ()),
    "limit": ("network N(input = [3, 8, 8]) {\n    for i in 1..100000 { relu }\n}\n", ()),
    "bad-define": (GOOD, ("-D", "nope=1")),
    "unknown-network": (GOOD, ("--network", "Missing")),
    "unparsable-define": (GOOD, ("-D", "input=[3,")),
}


@pytest.mark.parametrize("command, name", _commands(), ids=[c for c, _ in _commands()])
@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_failed_run_keeps_existing_output(tmp_path, command, name, failure):
    text, args = FAILURES[failure]
    path = tmp_path / "bad.ud"
    path.write_text(text, encoding="utf-8")
    target = tmp_path / name
    target.write_bytes(OLD)
    rc, out, err = run(command, str(path), "-o", str(target), *args)
    assert rc in (1, 2), err
    assert "Traceback" not in err
    assert err.startswith((f"{path}:", "<command line>:", "udnet: error:")), err
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []
    assert out == ""


def test_failed_compile_to_stdout_prints_nothing(tmp_path):
    path = tmp_path / "bad.ud"
    path.write_text("network N(input = [3, 8, 8]) {\n    linear(10)\n}\n", encoding="utf-8")
    rc, out, err = run("compile", str(path))
    assert rc == 1 and out == "" and err


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failure_while_writing(spec, tmp_path, monkeypatch, where):
    """The disk fills up (or the rename fails) half way: the old file stays, the temporary goes."""
    target = tmp_path / "model.py"
    target.write_bytes(OLD)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "write":

        class Full(io.FileIO):
            def write(self, data):
                super().write(bytes(data[:10]))  # a partial write, then the disk is full
                full()

        monkeypatch.setattr(udnet.output.os, "fdopen", lambda fd, mode: Full(fd, "wb"))
    else:
        monkeypatch.setattr(udnet.output.os, where, full)
    rc, _, err = run("compile", str(spec), "-o", str(target))
    assert rc == 2, err
    assert err == f"udnet: error: cannot write {target}: No space left on device\n"
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_interrupted_while_writing(spec, tmp_path, monkeypatch):
    target = tmp_path / "model.py"
    target.write_bytes(OLD)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(udnet.output.os, "replace", interrupt)
    rc, _, _ = run("compile", str(spec), "-o", str(target))
    assert rc == 130
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_successful_compile_replaces_the_file(spec, tmp_path):
    target = tmp_path / "model.py"
    target.write_bytes(OLD)
    os.chmod(target, 0o640)
    rc, out, err = run("compile", str(spec), "-o", str(target))
    assert rc == 0, err
    assert out == ""
    text = target.read_text(encoding="utf-8")
    assert text.startswith('"""N, compiled by udnet from net.ud.')
    compile(text, str(target), "exec")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # the file's mode is kept
    assert leftovers(tmp_path) == []
    rc, stdout_text, _ = run("compile", str(spec))
    assert stdout_text == text  # -o writes exactly what stdout gets


def test_new_file_gets_the_umask_mode(spec, tmp_path):
    umask = os.umask(0o022)
    try:
        rc, _, err = run("compile", str(spec), "-o", str(tmp_path / "model.py"))
    finally:
        os.umask(umask)
    assert rc == 0, err
    assert stat.S_IMODE(os.stat(tmp_path / "model.py").st_mode) == 0o644


@pytest.mark.parametrize("command, name", _commands(), ids=[c for c, _ in _commands()])
def test_missing_directory(spec, tmp_path, command, name):
    target = tmp_path / "no" / "such" / name
    rc, _, err = run(command, str(spec), "-o", str(target))
    assert rc == 2
    assert err.startswith(f"udnet: error: cannot write {target}: the directory ") and "does not exist" in err
    assert not (tmp_path / "no").exists()


def test_parent_is_a_file(spec, tmp_path):
    target = tmp_path / "net.ud" / "model.py"
    rc, _, err = run("compile", str(spec), "-o", str(target))
    assert rc == 2
    assert "is not a directory" in err
    assert spec.read_text(encoding="utf-8") == GOOD


def test_output_is_a_directory(spec, tmp_path):
    rc, _, err = run("compile", str(spec), "-o", str(tmp_path))
    assert rc == 2
    assert err == f"udnet: error: cannot write {tmp_path}: it is a directory\n"


def test_unwritable_directory(spec, tmp_path):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        os.chmod(locked, 0o500)
        target = locked / "model.py"
    elif os.path.isdir("/proc/self"):  # root may write anywhere but into the proc filesystem
        target = Path("/proc/udnet-test-model.py")
    else:
        pytest.skip("no unwritable directory for root here")
    try:
        rc, _, err = run("compile", str(spec), "-o", str(target))
    finally:
        if os.geteuid() != 0:
            os.chmod(target.parent, 0o700)
    assert rc == 2
    assert err.startswith(f"udnet: error: cannot write {target}: "), err
    assert "Traceback" not in err
    assert not target.exists()


def test_symbolic_link_stays_a_link(spec, tmp_path):
    real = tmp_path / "real.py"
    real.write_bytes(OLD)
    link = tmp_path / "model.py"
    link.symlink_to(real)
    rc, _, err = run("compile", str(spec), "-o", str(link))
    assert rc == 0, err
    assert link.is_symlink()
    assert real.read_text(encoding="utf-8").startswith('"""N, compiled by udnet')


def test_fifo_is_written_not_replaced(spec, tmp_path):
    """Devices, FIFOs and sockets (-o /dev/null, -o /dev/stdout) are written in place:
    renaming over one would replace the node itself (as root, /dev/null would become a file)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # The read end is open (without waiting for a writer) before the compile starts, so
    # the compile's open for writing never waits; a thread drains the pipe until the
    # compile has returned and the pipe is empty and closed.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    chunks: list[bytes] = []
    done = threading.Event()

    def drain():
        while True:
            select.select([fd], [], [], 0.05)
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # a writer, no data yet
                continue
            if data:
                chunks.append(data)
            elif done.is_set():  # no writer and the compile is over
                return
            else:
                time.sleep(0.01)  # no writer yet

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        rc, _, err = run("compile", str(spec), "-o", str(fifo))
    finally:
        done.set()
        reader.join(10)
        os.close(fd)
    assert rc == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert b"".join(chunks).startswith(b'"""N, compiled by udnet')
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("command", ["compile", "draw"])
def test_output_that_is_the_spec_is_refused(command, tmp_path):
    spec = tmp_path / ("net.ud" if command == "compile" else "net.svg")  # draw needs a drawable name
    spec.write_text(GOOD, encoding="utf-8")
    link = tmp_path / f"same{spec.suffix}"
    link.symlink_to(spec)
    for target in (spec, link):
        rc, _, err = run(command, str(spec), "-o", str(target))
        assert rc == 2, err
        assert "is the spec itself" in err
        assert spec.read_text(encoding="utf-8") == GOOD
