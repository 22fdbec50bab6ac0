"""Every file the reserve writes, written whole or not at all; a write that fails is an error.

- :func:`open_atomic` / :func:`write_text`: a file. A regular file (or a new one) is written to a
  temporary file in the same directory, flushed and fsynced, renamed over the target, and the
  directory is fsynced: a reader sees the old content or the new, never a part, and a failure
  leaves the old file untouched and no temporary file behind. A target that exists and is not
  a regular file (a character device such as ``/dev/full``, a FIFO) is written directly: renaming
  a file over it would replace the device node. A symbolic link is followed (the file it names
  is replaced, the link stays).
- :func:`replace_directory`: a directory of files (the transparency site), written into a
  temporary sibling directory that is then renamed into place: a failure leaves the old
  directory or nothing.
- :class:`GuardedStream`: a text stream whose failed write or flush (``ENOSPC``, ``EPIPE``, ...)
  is a :class:`~ledger.errors.WriteFailed` naming what it writes to; the CLI's standard output
  is one (:class:`ledger.cli.app.EscapingStream`).

Every error is :class:`~ledger.errors.WriteFailed` with the path and the cause (the system's
``strerror``), which the CLI ends with exit 2. Plumbing only: what to write is decided elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from ledger.errors import WriteFailed

UNSYNCABLE = (errno.EINVAL, errno.ENOTSUP)
"""What ``fsync`` of a directory says on file systems that cannot sync one (nothing to do)."""


# --- Streams ----------------------------------------------------------------------------------


class GuardedStream:
    """A text stream over ``raw`` whose failed write or flush raises :class:`WriteFailed`:
    ``cannot write NAME: CAUSE`` (NAME a path, or ``to standard output``); ``raw`` None is a
    closed stream (``sys.stdout`` when the process was started with its standard output closed)."""

    def __init__(self, raw: IO[str] | None, name: str) -> None:
        self.raw = raw
        self.name = name
        self.failed: OSError | None = None
        """The error a write or flush failed with (the stream is broken from then on)."""
        self.encoding: str = getattr(raw, "encoding", None) or "utf-8"
        self.errors: str = getattr(raw, "errors", None) or "strict"

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes streams with b"": a text stream refuses bytes
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._guard():
            self._open().write(text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.raw is not None:
            with self._guard():
                self.raw.flush()

    def isatty(self) -> bool:
        return self.raw is not None and self.raw.isatty()

    def fileno(self) -> int:
        return self._open().fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return bool(getattr(self.raw, "closed", False))

    def _open(self) -> IO[str]:
        if self.raw is None:
            raise WriteFailed(f"cannot write {self.name}: it is closed")
        return self.raw

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            self.failed = e
            raise WriteFailed(f"cannot write {self.name}: {cause(e)}") from e


# --- Files ------------------------------------------------------------------------------------


def check_target(path: Path) -> None:
    """Refuse (:class:`WriteFailed`) a path no file can be written to: its directory missing or
    not a directory, or the path itself a directory. For commands that check before they change
    anything; :func:`open_atomic` checks again."""
    target = _followed(path)
    parent = target.parent
    if target.is_dir():
        raise WriteFailed(f"cannot write {path}: it is a directory; give a file name")
    if not parent.exists():
        raise WriteFailed(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise WriteFailed(f"cannot write {path}: {parent} is not a directory")


def make_directory(path: Path) -> None:
    """Make directory ``path`` and its missing parents (as ``mkdir -p``); :class:`WriteFailed`
    when it cannot be made, or it or a parent exists and is not a directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTDIR):
            raise WriteFailed(f"cannot write into {path}: it or a parent is not a directory") from e
        raise _failed(path, e) from e


def check_directory(directory: Path) -> None:
    """Refuse (:class:`WriteFailed`) a directory no file can be made in (missing, not a
    directory, read-only, not ours): a temporary file is made there and removed. For commands
    that check before they change anything; a full disk shows only when the file is written."""
    try:
        fd, probe = _create_temporary(directory / "probe")
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR) and not directory.is_dir():
            raise WriteFailed(f"cannot write into {directory}: it is not an existing directory") from e
        raise WriteFailed(f"cannot write into {directory}: {cause(e)}") from e
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def write_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`open_atomic`)."""
    with open_atomic(path, encoding=encoding) as f:
        f.write(text)


@contextmanager
def open_atomic(path: Path, *, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[str]]:
    """A text stream whose content replaces ``path`` when the block ends without an error.

    An error in the block (the caller's or a failed write) discards what was written; a failed
    write, sync or rename is :class:`WriteFailed` naming ``path``. The new file keeps the mode of
    the file it replaces (a new one gets the usual ``0666`` less the umask).
    """
    try:
        st = os.stat(path)  # through a symbolic link, as the kernel will
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _failed(path, e) from e
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise WriteFailed(f"cannot write {path}: it is a directory; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        with _open_special(path, encoding, newline) as special:
            yield special
        return
    target = _followed(path)
    try:
        fd, tmp = _create_temporary(target)
    except OSError as e:
        raise _failed(path, e) from e
    f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    try:
        with _guarded(path):
            if st is not None:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
        yield _as_io(GuardedStream(f, str(path)))
        with _guarded(path):
            f.flush()
            os.fsync(fd)
            f.close()
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # what a failed flush left in the buffer fails again
            f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(target.parent, path)


@contextmanager
def _open_special(path: Path, encoding: str, newline: str | None) -> Iterator[IO[str]]:
    """A device or FIFO, written in place (there is nothing to rename over it). Opening a FIFO
    waits for its reader, as a shell redirection does."""
    with _guarded(path):
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    f = os.fdopen(fd, "w", encoding=encoding, newline=newline)
    try:
        yield _as_io(GuardedStream(f, str(path)))
        with _guarded(path):
            f.flush()
    finally:
        with contextlib.suppress(OSError):  # what a failed flush left in the buffer fails again
            f.close()


def replace_directory(out: Path, files: Mapping[str, str], *, encoding: str = "utf-8") -> None:
    """Make directory ``out`` hold exactly ``files`` (name: text), whole or not at all.

    Missing parent directories are made first. The files are written into a temporary sibling
    directory, each fsynced, which is then renamed to ``out``; an existing ``out`` is renamed
    away first and removed after, or renamed back when the new one cannot take its place.
    Whether ``out`` may be replaced is the caller's judgement. A failure is
    :class:`WriteFailed` and leaves the old directory (or none). ``out`` may not be the current
    directory or hold it (it is moved away).
    """
    import shutil

    target = Path(os.path.abspath(_followed(out)))
    parent = target.parent
    here = Path.cwd()
    if target == parent or here == target or target in here.parents:
        raise WriteFailed(
            f"cannot write {out}: it is replaced as a whole, and it is the current directory or "
            "holds it; run the command from elsewhere, e.g. `cd ..`"
        )
    try:
        old = os.stat(target) if os.path.lexists(target) else None
    except OSError as e:
        raise _failed(out, e) from e
    if old is not None and not stat.S_ISDIR(old.st_mode):
        raise WriteFailed(f"cannot write {out}: it is a file, not a directory; give a directory")
    make_directory(parent)  # (as ``mkdir -p``)
    staging = parent / f".{target.name}.{_token()}.tmp"
    try:
        with _guarded(out):
            os.mkdir(staging)
            if old is not None:
                os.chmod(staging, stat.S_IMODE(old.st_mode))
        for name, text in files.items():
            _write_new(staging / name, text, encoding, out / name)
        _sync_directory(staging, out)
        _swap(staging, target, old is not None, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_directory(parent, out)


def _swap(staging: Path, target: Path, exists: bool, shown: Path) -> None:
    """Rename ``staging`` to ``target``, moving an existing ``target`` away first."""
    import shutil

    if not exists:
        with _guarded(shown):
            os.rename(staging, target)
        return
    aside = target.parent / f".{target.name}.{_token()}.old"
    with _guarded(shown):
        os.rename(target, aside)
    try:
        with _guarded(shown):
            os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _write_new(path: Path, text: str, encoding: str, shown: Path) -> None:
    """A new file in a directory only this process knows yet: write, flush, fsync."""
    with _guarded(shown):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _token() -> str:
    """A random part for temporary names (``secrets`` costs the CLI's start more than this)."""
    return os.urandom(8).hex()


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``target`` (same directory: the rename stays atomic)."""
    tmp = target.parent / f".{target.name}.{_token()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return os.open(tmp, flags, 0o666), tmp


def _sync_directory(directory: Path, shown: Path) -> None:
    """fsync ``directory``: the rename in it survives a crash."""
    with _guarded(shown):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in UNSYNCABLE:
            raise _failed(shown, e) from e
    finally:
        os.close(fd)


def _as_io(stream: GuardedStream) -> IO[str]:
    """A guarded stream where an ``IO[str]`` is expected (it has every method writers use)."""
    return cast("IO[str]", stream)


def _followed(path: Path) -> Path:
    """``path``, or the path a symbolic link at ``path`` names (the link itself stays)."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


@contextmanager
def _guarded(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise _failed(path, e) from e


def _failed(path: Path, e: OSError) -> WriteFailed:
    """The error for ``path``: its cause in words, with what to do where that is clear."""
    parent = path.parent if str(path.parent) else Path(".")
    if e.errno == errno.ENOENT and not parent.exists():
        return WriteFailed(f"cannot write {path}: directory {parent} does not exist")
    if e.errno == errno.ENOTDIR:
        return WriteFailed(f"cannot write {path}: {parent} is not a directory")
    if e.errno == errno.EISDIR:
        return WriteFailed(f"cannot write {path}: it is a directory; give a file name")
    return WriteFailed(f"cannot write {path}: {cause(e)}")


def cause(e: OSError) -> str:
    """The cause of ``e`` in the system's words (``No space left on device``)."""
    return e.strerror or (os.strerror(e.errno) if e.errno else str(e)) or type(e).__name__
