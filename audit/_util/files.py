"""Output files: checked before any work, written atomically and together.

Each file is written to a temporary file beside its target, then renamed over it, so a
reader never sees a half-written report or checkpoint. The files of one run are written
as a set: every temporary file first, then all renames, so a failure or an interrupt
leaves either the whole new set or the previous files, and no temporary file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from audit._util.errors import AuditInputError
from audit._util.paths import shown

Writer = Callable[[BinaryIO], object]
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
NAME_MAX = 255  # bytes in a file name on the usual filesystems, where os.pathconf cannot say
_RANDOM = 8  # characters mkstemp puts in a temporary name


def write_atomic(path: str | Path, write: Writer) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_together({path: write})
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, text_writer(text))


def text_writer(text: str) -> Writer:
    return lambda f: f.write(text.encode("utf-8", errors="replace"))


def write_together(writes: Mapping[Path, Writer]) -> None:
    """Write every file to a temporary file beside it, then rename them all; on any failure, none."""
    for path in writes:
        _check_name_length("output", path, Path(path))
    temporary: list[str] = []
    try:
        for path, write in writes.items():
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, **_temporary_name(Path(path).name))
            temporary.append(tmp)
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with _signals_held():  # an interrupt between two renames would leave half a set
            for tmp, path in zip(temporary, writes):
                os.replace(tmp, path)
    except BaseException:
        for tmp in temporary:
            Path(tmp).unlink(missing_ok=True)
        raise


def check_outputs(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path | None]) -> dict[str, Path]:
    """The output paths, resolved, or an `AuditInputError` naming the first that could not be written safely.

    `outputs` and `inputs` map an option name (`-o`, `--data`) to its path. An output must be a
    regular file or not exist yet, in an existing folder this process can create files in, and
    differ from every input and every other output (the same file through symlinks or hard links
    counts as the same), lie outside every folder given as an input (a model folder, an image folder),
    and have a name that fits the filesystem with the temporary name written beside it.
    """
    resolved: dict[str, Path] = {}
    taken = {option: Path(p) for option, p in inputs.items() if p is not None}
    folders = {option: p.resolve() for option, p in taken.items() if _is_folder(p)}
    for option, given in outputs.items():
        path = Path(given)
        _check_name_length(option, given, path)
        try:
            target = _checked_target(option, given, path, folders, taken)
        except OSError as exc:  # a folder name longer than the filesystem allows, a loop of links
            raise AuditInputError(f"{option} {shown(given)}: cannot be written there ({exc.strerror})") from None
        _probe_writable(option, given, target.parent)
        taken[option] = target
        resolved[option] = target
    return resolved


def _checked_target(option: str, given: str | Path, path: Path, folders: Mapping[str, Path],
                    taken: Mapping[str, Path]) -> Path:
    target = path.resolve()
    if target.is_dir():
        raise AuditInputError(f"{option} {given}: is a directory; give a file name")
    for other, folder in folders.items():
        if folder in target.parents:
            raise AuditInputError(f"{option} {given}: inside the folder {other} {taken[other]}; "
                                  "it would change that input")
    if target.exists() and not target.is_file():
        raise AuditInputError(f"{option} {given}: not a regular file")
    if not target.parent.is_dir():
        raise AuditInputError(f"{option} {given}: folder {path.parent} does not exist")
    for other, other_path in taken.items():
        if _same_file(target, other_path):
            raise AuditInputError(f"{option} {given}: the same file as {other} {other_path}; "
                                  "it would be overwritten")
    return target


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to be one: its reader says what is wrong with it
        return False


def _temporary_name(name: str) -> dict[str, str]:
    return {"prefix": f".{name}.", "suffix": ".tmp"}


def _check_name_length(option: str, given: str | Path, path: Path) -> None:
    """Refuse a name the filesystem cannot hold, or whose temporary sibling it cannot, before the audit runs for
    minutes and then fails to write."""
    name = len(os.fsencode(path.name))
    temporary = _temporary_name(path.name)
    added = len(os.fsencode(temporary["prefix"] + temporary["suffix"])) - name + _RANDOM
    longest = _name_max(path.parent) - added
    if name > longest:
        raise AuditInputError(f"{option} {shown(path.parent / path.name[:32])}...: the file name is {name} bytes; "
                              f"at most {longest} fit here, with the temporary file written beside it")


def _name_max(folder: Path) -> int:
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), a folder not made yet
        return NAME_MAX
    return limit if limit > 0 else NAME_MAX  # -1: the filesystem sets no limit


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _probe_writable(option: str, given, folder: Path) -> None:
    """Create and remove a temporary file where the output will go: the only test that cannot be fooled."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".audit-probe.", suffix=".tmp")
    except OSError as exc:
        raise AuditInputError(f"{option} {given}: cannot write in {folder} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done; they are delivered right after it."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
