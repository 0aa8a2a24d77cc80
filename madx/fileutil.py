"""Crash-safe file writing: nothing a user saved earlier is lost or left half-written.

Everything madx writes (adapter folders, checkpoints, reports) goes to a temporary sibling first
and is renamed into place only when complete. A rename within one file system is atomic, so a
reader sees either the old folder or the new one, never a mix.

Reading text has one home here too: `read_utf8_lines`, the strict UTF-8 line reader behind every
text file the project reads line by line (CoNLL files, plain-text corpora, the packaged POS corpora).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from madx.errors import DataError


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `target`, on error it is removed.

    The folder and everything written into it get the modes mkdir and open give under the umask,
    whoever wrote them (see `_give_umask_modes`).

    An existing `target` is moved aside first and deleted only after the new folder is in place,
    so a crash at any point leaves either the old or the new complete folder under `target`
    (or, between the two renames, the old one under a `.old-*` name beside it, which the next
    writer puts back: see `recover_interrupted`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield staging
        _give_umask_modes(staging)
        _fsync_tree(staging)
    except BaseException as error:
        written = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        shutil.rmtree(staging, ignore_errors=True)
        _say_disk_full(error, target, written)
        raise
    backup = None
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
        os.rmdir(backup)
        os.rename(target, backup)
    os.rename(staging, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def recover_interrupted(target: str | Path) -> None:
    """Clear what a writer of `target` that no longer runs (killed, crashed) left beside it: its
    staging folders are deleted; its backup of the previous `target` (left when it died between
    the two renames) is put back if `target` is missing, deleted otherwise. A live writer's
    folders are left alone."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    leftover = re.compile(rf"\.{re.escape(target.name)}\.(tmp|old)-(\d+)-")
    for sibling in sorted(target.parent.iterdir()):
        match = leftover.match(sibling.name)
        if not match or not sibling.is_dir() or process_alive(int(match[2])):
            continue
        with contextlib.suppress(OSError):  # another process may be clearing the same leftovers
            if match[1] == "old" and not target.exists():
                os.rename(sibling, target)
            else:
                shutil.rmtree(sibling)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a killed process not yet reaped counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a zombie: dead, only waiting for its parent to collect its exit status
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _say_disk_full(error: BaseException, target: Path, written: int) -> None:
    """A full disk as one line naming the folder and the space needed (safetensors and numpy raise it
    as their own errors, with the OS message inside); the old `target`, if any, is untouched."""
    from madx.errors import MadxError

    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error):
        free = shutil.disk_usage(target.parent).free
        raise MadxError(f"no space left on the device of {target.parent} while writing {target.name}: it had written "
                        f"{written / 2**20:,.1f} MiB when the disk filled ({free / 2**20:,.1f} MiB free now); free "
                        f"at least that much there and run the same command again (nothing was replaced)") from None


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask would, for a moment, in every thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def refuse_overlap(source: str | Path, target: str | Path, what: str) -> None:
    """Refuse to write `target` when it is `source`, lies inside it or contains it: replacing it would
    destroy the input being read."""
    from madx.errors import MadxError

    source_path, target_path = Path(source).resolve(), Path(target).resolve()
    if target_path == source_path or source_path in target_path.parents or target_path in source_path.parents:
        relation = ("is" if target_path == source_path else
                    "lies inside" if source_path in target_path.parents else "contains")
        raise MadxError(f"{what}: the output {target} {relation} the input {source}; writing it would destroy the "
                        "input. Choose another --out folder")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Let `write(tmp)` fill a temporary file beside `path`, then rename it over `path`: readers see
    the old file or the new one, never half of one. The temporary name is unique per writer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        umask_mode = 0o666 & ~current_umask()
        os.chmod(tmp, umask_mode)  # mkstemp makes 0600; `write` may set a mode of its own
        made = os.stat(tmp).st_ino
        write(Path(tmp))
        if os.stat(tmp).st_ino != made:
            # `write` renamed its own file over tmp, as safetensors' save_file does (always 0600): nobody chose that
            os.chmod(tmp, umask_mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        written = 0
        with contextlib.suppress(OSError):
            written = os.path.getsize(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _say_disk_full(error, path, written)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def sha256_of_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_directory(folder: str | Path) -> str:
    """A content hash of every file under `folder` (names and bytes, in sorted order)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


BAD_UTF8 = "{path}:{line}: byte 0x{byte:02x} at file offset {offset} is not valid UTF-8; expected a UTF-8 text file"


def read_utf8_lines(path: str | Path, bad_utf8: str = BAD_UTF8) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line end) of a UTF-8 file; DataError on bad bytes.

    Decoded line by line so a bad byte is reported with its line and file offset, and a large
    file is never held in memory twice. A byte-order mark at the start of the file is dropped (it
    is not part of the first word), and so are the CR and LF characters that end a line (LF and
    CRLF files read alike).
    `bad_utf8` is the DataError's message for a byte that is not UTF-8, a `str.format` template
    with the fields `path`, `line` (1-based), `byte` (its value), `column` (its 0-based position
    in the line) and `offset` (its 0-based position in the file), so each caller keeps its words.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; expected a file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    offset = 0
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(bad_utf8.format(
                    path=path, line=number, byte=raw[err.start], column=err.start, offset=offset + err.start
                )) from None
            offset += len(raw)
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text.rstrip("\r\n")


def _give_umask_modes(folder: Path) -> None:
    """Give `folder` and everything under it the modes mkdir and open give under the process's umask
    (0755/0644 under 022, 0750/0640 under 027), executables keeping their x bits. Writers choose
    otherwise: mkdtemp makes the staging folder 0700, and safetensors' save_file (adapters, heads,
    checkpoints, every transformers `save_pretrained`) writes its own temporary file, 0600 whatever
    the umask, and renames it over the name it was given; a teammate or a worker running as another
    user could not read the adapters. One pass here covers every writer of an atomic folder."""
    mask = current_umask()
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue  # chmod would follow the link to a file this folder does not own
        if stat.S_ISDIR(mode) or mode & 0o111:
            os.chmod(path, 0o777 & ~mask)
        else:
            os.chmod(path, 0o666 & ~mask)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


_ABSOLUTE_PATH = re.compile(r"(?<![\w:./])/(?:[^\s,/\[\]]+/)*([^\s,/\[\]]+)")


def without_folders(text: str, relative_to: str | Path | None = None) -> str:
    """`text` with every absolute path shortened to its last part (what a saved adapter records of
    its inputs, so that it stays the same bytes wherever the inputs and outputs lie), or, with
    `relative_to`, made relative to that folder (what a report shows)."""
    if relative_to is None:
        return _ABSOLUTE_PATH.sub(lambda match: match.group(1), text)
    return _ABSOLUTE_PATH.sub(lambda match: os.path.relpath(match.group(0), relative_to), text)
