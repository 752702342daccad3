"""Atomic artifact I/O: a reader never sees a half-written file or directory.

Writes go to a sibling temp named ``.<name>.tmp-<pid>-<random>`` and are renamed
into place; a directory being replaced is first renamed aside to
``.<name>.old-<pid>-<random>``. The pid in the name lets a later writer remove
what a writer that died (killed, out of memory) left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>[0-9]+)-[^/]*$")


def temp_prefix(name: str, kind: str = "tmp", pid: Optional[int] = None) -> str:
    """The prefix of a temp beside ``name``: ``kind`` is ``tmp`` (being written) or ``old`` (being replaced)."""
    return f".{name}.{kind}-{os.getpid() if pid is None else pid}-"


def temp_owner(entry: str, name: Optional[str] = None) -> Optional[int]:
    """The pid that made temp ``entry`` (a file or folder name), or None when it is no temp (of ``name``, when given)."""
    match = _TEMP_NAME.match(entry)
    if match is None or (name is not None and match["name"] != name):
        return None
    return int(match["pid"])


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike[str], name: Optional[str] = None) -> list[Path]:
    """Remove the temps in ``directory`` (of ``name`` only, when given) whose writer is gone; return what was removed.

    A live pid keeps its temps, even one reused by an unrelated process: a leftover
    costs disk space, removing a temp being written would break a run.
    """
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        pid = temp_owner(entry.name, name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Atomically write one JSON object per line."""
    return write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`write_jsonl`."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move directory ``new`` to ``target``; an existing ``target`` is renamed aside, then removed.

    ``target`` is either the old directory or the new one, never a mix: at worst a
    crash between the two renames leaves it missing, with the old one aside as a temp.
    """
    new, target = Path(new), Path(target)
    if target.is_symlink() or target.is_file():
        target.unlink()
    if not target.exists():
        os.rename(new, target)
        return target
    aside = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name, "old"), dir=target.parent))
    os.rename(target, aside)  # POSIX rename replaces the empty placeholder mkdtemp made
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return target


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` only when the block succeeds.

    The caller must be the only writer of ``path`` (a stage owns its folder; the
    model cache is written under a lock). Temps that dead writers left beside
    ``path`` are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
