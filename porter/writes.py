"""Writing what a user asked for, and nothing else: atomically, never over what they wrote
without --force, never through a device, FIFO or socket, through a symlink only when forced.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class WriteRefused(Exception):
    """A target porter will not write: the message is the one-line reason."""


def writable_target(path: Path, what: str, force: bool) -> Path:
    """The file to write for `path` (its symlink's target when forced), or WriteRefused."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not force:
            raise WriteRefused(f"{what} {path} is a symbolic link to {target}; pass --force to write through it")
        return writable_target(target, what, force) if target.exists() else target
    if not path.exists():
        if not path.parent.is_dir():
            raise WriteRefused(f"{what} {path}: no such folder {path.parent}")
        return path
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise WriteRefused(f"{what} {path} is a folder; give a file name")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise WriteRefused(f"{what} {path} is {kind}; porter only writes regular files")
    if not force:
        raise WriteRefused(f"{what} {path} exists; pass --force to overwrite it")
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, then rename over the target.

    An existing file keeps its permissions; a new one gets the user's umask, as `open` would.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def patch_root(paths: list[str], cwd: Path) -> Path:
    """The folder patch paths are relative to: the working directory when every file is below
    it, else the project (or VCS) root that holds them all, else their common folder."""
    absolute = [Path(p) if Path(p).is_absolute() else (cwd / p) for p in paths]
    resolved = [Path(os.path.abspath(p)) for p in absolute]
    here = Path(os.path.abspath(cwd))
    if all(p.is_relative_to(here) for p in resolved):
        return here
    common = Path(os.path.commonpath([str(p.parent) for p in resolved])) if resolved else here
    for folder in (common, *common.parents):
        if any((folder / marker).exists() for marker in (".git", "pyproject.toml", "setup.py", "setup.cfg")):
            return folder
    return common


def patch_path(path: str, root: Path, cwd: Path) -> str:
    """`path` as a patch names it: relative to `root`, with forward slashes."""
    absolute = Path(os.path.abspath(Path(path) if Path(path).is_absolute() else cwd / path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix().lstrip("/")
