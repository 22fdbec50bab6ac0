"""Every file the reserve writes is written whole or not at all (:mod:`ledger.files`): a failure at
any step (a write, the fsync, the rename; an error of the caller in the middle) leaves the old
content and no temporary file, and is a :class:`WriteFailed` naming the path and the cause. A
device or FIFO is written in place, never renamed over; a directory is replaced as a whole."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import WriteFailed
from ledger.files import GuardedStream, check_target, open_atomic, replace_directory, write_text
from tests.fixtures.devices import full_device


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def fail_with(code: int) -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.fixture
def old_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "export.json"
    path.write_text("old\n")
    path.chmod(0o640)
    yield path
    assert names(tmp_path) == ["export.json"]  # no temporary file left, whatever happened


def test_a_file_is_replaced_whole_and_keeps_its_mode(old_file: Path) -> None:
    write_text(old_file, "new\n")
    assert old_file.read_text() == "new\n"
    assert stat.S_IMODE(old_file.stat().st_mode) == 0o640


def test_a_new_file_gets_the_usual_mode(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text(tmp_path / "new.json", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.json").read_text() == "x"
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644


def test_an_error_in_the_middle_leaves_the_old_content(old_file: Path) -> None:
    with pytest.raises(RuntimeError, match="reading the books failed"), open_atomic(old_file) as f:
        f.write("half of the ")
        f.flush()
        raise RuntimeError("reading the books failed")
    assert old_file.read_text() == "old\n"


@pytest.mark.parametrize(
    ("step", "code"),
    [("fsync", errno.ENOSPC), ("replace", errno.EACCES), ("fchmod", errno.EROFS), ("open", errno.EDQUOT)],
)
def test_a_failed_step_is_write_failed_and_leaves_the_old_content(
    old_file: Path, monkeypatch: pytest.MonkeyPatch, step: str, code: int
) -> None:
    monkeypatch.setattr(os, step, fail_with(code))
    with pytest.raises(WriteFailed) as e:
        write_text(old_file, "new\n")
    assert str(e.value) == f"cannot write {old_file}: {os.strerror(code)}"
    monkeypatch.undo()
    assert old_file.read_text() == "old\n"


def test_text_the_encoding_refuses_writes_nothing(old_file: Path) -> None:
    with pytest.raises(UnicodeEncodeError), open_atomic(old_file, encoding="ascii") as f:
        f.write("ünïcode")  # an ASCII document with other text in it is a bug, not a write error
    assert old_file.read_text() == "old\n"


def test_a_device_is_written_in_place_never_renamed_over(tmp_path: Path) -> None:
    device = full_device(tmp_path)
    before = set(device.parent.iterdir())
    for text in ("a checkpoint\n", "a large export\n" * 100_000):  # fails at the flush, or a write
        with pytest.raises(WriteFailed) as e:
            write_text(device, text)
        assert str(e.value) == f"cannot write {device}: No space left on device"
    assert stat.S_ISCHR(device.stat().st_mode)  # still the device
    assert set(device.parent.iterdir()) == before  # no temporary file beside it
    write_text(Path(os.devnull), "into the void\n")  # a device that takes it: fine
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_text(fifo, "through the pipe\n")
    reader.join(timeout=30)
    assert got == [b"through the pipe\n"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert names(tmp_path) == ["pipe"]


def test_a_symbolic_link_stays_and_its_file_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert names(tmp_path) == ["link.json", "real.json"]


def test_paths_that_cannot_be_written_say_why(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    cases = {
        tmp_path: "it is a directory; give a file name",
        tmp_path / "missing" / "x.json": f"directory {tmp_path / 'missing'} does not exist",
        a_file / "x.json": f"{a_file} is not a directory",
    }
    for path, why in cases.items():
        for attempt in (check_target, lambda p: write_text(p, "x")):
            with pytest.raises(WriteFailed) as e:
                attempt(path)
            assert str(e.value) == f"cannot write {path}: {why}"
    with pytest.raises(WriteFailed, match="cannot write /proc/version: "):
        write_text(Path("/proc/version"), "x")  # a file system where no file can be made
    assert a_file.read_text() == "keep" and names(tmp_path) == ["a-file"]


def test_a_stream_that_fails_names_itself_and_the_cause() -> None:
    class Broken:
        encoding = "utf-8"

        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    stream = GuardedStream(Broken(), "to standard output")  # type: ignore[arg-type]
    with pytest.raises(WriteFailed, match=r"^cannot write to standard output: Broken pipe$"):
        stream.write("balance")
    with pytest.raises(WriteFailed, match=r"^cannot write to standard output: No space left on device$"):
        stream.flush()
    assert stream.failed is not None
    closed = GuardedStream(None, "to standard output")
    with pytest.raises(WriteFailed, match=r"^cannot write to standard output: it is closed$"):
        closed.write("x")


# --- a directory, replaced as a whole ---------------------------------------------------------


def test_a_directory_is_made_and_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "www" / "site"  # parents are made
    replace_directory(out, {"index.html": "one", "checkpoint.json": "{}"})
    assert names(out) == ["checkpoint.json", "index.html"]
    out.chmod(0o750)
    replace_directory(out, {"index.html": "two"})
    assert names(out) == ["index.html"] and (out / "index.html").read_text() == "two"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert names(tmp_path / "www") == ["site"]  # no staging or old directory left


@pytest.mark.parametrize(("step", "named"), [("rename", ""), ("fsync", "/checkpoint.json")])
def test_a_failed_directory_write_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, named: str
) -> None:
    out = tmp_path / "site"
    replace_directory(out, {"index.html": "old"})
    real = getattr(os, step)
    calls = 0

    def second_fails(*args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:  # rename: putting the new one in place; fsync: the second file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(os, step, second_fails)
    with pytest.raises(WriteFailed) as e:
        replace_directory(out, {"index.html": "new", "checkpoint.json": "{}"})
    monkeypatch.undo()
    assert str(e.value) == f"cannot write {out}{named}: No space left on device"
    assert names(tmp_path) == ["site"] and names(out) == ["index.html"]
    assert (out / "index.html").read_text() == "old"


def test_a_directory_is_not_written_over_a_file_or_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    with pytest.raises(WriteFailed, match="it is a file, not a directory"):
        replace_directory(a_file, {"index.html": "x"})
    with pytest.raises(WriteFailed, match="is not a directory"):
        replace_directory(a_file / "site", {"index.html": "x"})
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for out in (Path("."), here, tmp_path):
        with pytest.raises(WriteFailed, match="current directory"):
            replace_directory(out, {"index.html": "x"})
    assert a_file.read_text() == "keep" and names(tmp_path) == ["a-file", "here"] and names(here) == []


def test_a_signing_key_that_cannot_be_written_is_not_left_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.journal.checkpoint import create_signing_key

    path = tmp_path / "signing.key"
    monkeypatch.setattr(os, "write", fail_with(errno.ENOSPC))
    with pytest.raises(WriteFailed) as e:
        create_signing_key(path)
    assert str(e.value) == f"cannot write signing key {path}: No space left on device"
    assert names(tmp_path) == []


def test_a_directory_no_file_can_be_made_in_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    from ledger.files import check_directory

    check_directory(tmp_path)
    assert names(tmp_path) == []  # the probe is gone
    (tmp_path / "a-file").write_text("keep")
    for directory, why in (
        (tmp_path / "missing", "it is not an existing directory"),
        (tmp_path / "a-file", "it is not an existing directory"),
        (Path("/proc"), ""),
    ):
        with pytest.raises(WriteFailed, match=f"^cannot write into {directory}: {why}"):
            check_directory(directory)
    assert names(tmp_path) == ["a-file"]
