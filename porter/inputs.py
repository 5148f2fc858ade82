"""Reading the files a command names: directories walked, quoted includes followed.

Part of the CLI's I/O layer: the pipeline itself only ever sees bytes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from porter.model import Companions, FileProblem

SOURCE_SUFFIXES = (".c", ".h")
MAX_FILE_BYTES = 32 * 1024 * 1024
# Found from its `#` (which the search skips to fast), then checked to start its line: a pattern
# anchored at every line start (`^[ \t]*#`) costs seven times as much on a tree.
_QUOTED_INCLUDE = re.compile(rb'#[ \t]*include[ \t]*"([^"\n]+)"')
_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "build", "dist", ".tox", ".venv", "venv",
              "node_modules"}


@dataclass(frozen=True)
class InputFile:
    path: str  # as shown in output: relative to the working directory when possible
    data: bytes
    given: bool  # named on the command line (or found in a named directory)


@dataclass
class Inputs:
    files: list[InputFile] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    # The package's Python files that read a class `__dict__` or `__module__` (analyze.python_side).
    python_files: list[InputFile] = field(default_factory=list)
    # Sources that include a given header but were not given (see outside_includers).
    outside_files: list[InputFile] = field(default_factory=list)
    # setup.py, setup.cfg and pyproject.toml of the projects the sources belong to.
    build_files: list[InputFile] = field(default_factory=list)
    # -D and -I given on the command line, for what a build computes (pg_config --includedir).
    given_defines: list[tuple[str, str]] = field(default_factory=list)
    given_include_dirs: list[str] = field(default_factory=list)
    cpython_version: tuple[int, int] | None = None  # the sources sit in CPython's own tree of this version
    cpython_root: str | None = None  # ... at this root

    def companions(self) -> Companions:
        return Companions(tuple((f.path, f.data) for f in self.python_files),
                          tuple((f.path, f.data) for f in self.outside_files),
                          tuple((f.path, f.data) for f in self.build_files),
                          tuple(self.given_defines), tuple(self.given_include_dirs), self.cpython_version,
                          self.cpython_root)


def display_path(path: Path, cwd: Path, resolve: Callable[[Path], Path] = Path.resolve) -> str:
    try:
        return resolve(path).relative_to(resolve(cwd)).as_posix()
    except ValueError:
        return path.as_posix()


def collect_inputs(paths: list[str | Path], cwd: Path | None = None, follow_includes: bool = True) -> Inputs:
    cwd = cwd or Path.cwd()
    # A path is resolved once a run (a stat per component): a tree's files are asked about
    # again for every include that names them.
    resolve = functools.cache(Path.resolve)
    inputs = Inputs()
    seen: set[Path] = set()
    queue: list[tuple[Path, bool, str | None]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            inputs.problems.append(FileProblem(str(raw), "no such file or directory"))
        elif p.is_dir():
            queue.extend((f, True, None) for f in _walk(p))
        else:
            queue.append((p, True, None))
    while queue:
        path, given, includer = queue.pop(0)
        key = resolve(path)
        if key in seen:
            continue
        seen.add(key)
        shown = display_path(path, cwd, resolve)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                inputs.problems.append(FileProblem(shown, "file too large to scan", includer))
                continue
            data = path.read_bytes()
        except OSError as e:
            inputs.problems.append(FileProblem(shown, e.strerror or str(e), includer))
            continue
        if b"\0" in data[:8192]:
            inputs.problems.append(FileProblem(shown, "binary file", includer))
            continue
        inputs.files.append(InputFile(shown, data, given))
        if follow_includes:
            for name in quoted_includes(data):
                target = _find_include(path, os.fsdecode(name), resolve)
                if target is not None and resolve(target) not in seen:
                    queue.append((target, False, shown))
    existing = [Path(p) for p in paths if Path(p).exists()]
    inputs.python_files = python_companions(existing, cwd)
    inputs.build_files = build_files(existing, cwd)
    inputs.outside_files = outside_includers(inputs.files, cwd, resolve)
    from porter.cpython import cpython_tree

    trees = [t for t in (cpython_tree(p.resolve()) for p in existing) if t is not None]
    if trees:
        inputs.cpython_version, inputs.cpython_root = trees[0].version, str(trees[0].root)
    return inputs


def quoted_includes(data: bytes) -> list[bytes]:
    """The names of a file's `#include "..."` lines (only blanks before the `#`), in order."""
    found = []
    for m in _QUOTED_INCLUDE.finditer(data):
        line_start = data.rfind(b"\n", 0, m.start()) + 1
        if not data[line_start:m.start()].strip(b" \t"):
            found.append(m.group(1))
    return found


def outside_includers(files: list[InputFile], cwd: Path,
                      resolve: Callable[[Path], Path] = Path.resolve) -> list[InputFile]:
    """C files next to the inputs that include one of their headers but were not given:
    code porter does not port, which may still use what those headers declare."""
    given = {resolve(Path(f.path)) if Path(f.path).is_absolute() else resolve(cwd / f.path) for f in files}
    headers = {Path(f.path).name for f in files if f.path.endswith(".h")}
    if not headers:
        return []
    folders = {p.parent for p in given}
    found = []
    for folder in sorted(folders):
        try:
            candidates = sorted(folder.iterdir())
        except OSError:
            continue
        for path in candidates:
            if path.suffix not in SOURCE_SUFFIXES or resolve(path) in given or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            names = {os.fsdecode(name).rsplit("/", 1)[-1] for name in quoted_includes(data)}
            if names & headers:
                found.append(InputFile(display_path(path, cwd, resolve), data, False))
    return found


PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg")
MAX_PYTHON_FILES = 5000
MAX_PYTHON_BYTES = 2 * 1024 * 1024


def project_root(path: Path) -> Path:
    """The nearest folder above `path` with a pyproject.toml or setup.py, else its own folder."""
    return _root_of((path if path.is_dir() else path.parent).resolve())


@functools.cache
def _root_of(start: Path) -> Path:
    # Asked again for every include that is not next to its includer: look at each folder once.
    for folder in (start, *start.parents):
        if any((folder / marker).is_file() for marker in PROJECT_MARKERS):
            return folder
    return start


def build_files(paths: list[Path], cwd: Path) -> list[InputFile]:
    """The build files at the roots of the projects the sources belong to."""
    found = []
    for root in sorted({project_root(p) for p in paths}):
        for marker in PROJECT_MARKERS:
            path = root / marker
            try:
                if path.is_file() and path.stat().st_size <= MAX_PYTHON_BYTES:
                    found.append(InputFile(display_path(path, cwd), path.read_bytes(), False))
            except OSError:
                continue
    return found


def python_companions(paths: list[Path], cwd: Path) -> list[InputFile]:
    """Python files of the projects the sources belong to that read some `__dict__` or `__module__`."""
    found: list[InputFile] = []
    seen: set[Path] = set()
    for root in sorted({project_root(p) for p in paths}):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                path = (Path(dirpath) / name).resolve()
                if not name.endswith(".py") or path in seen:
                    continue
                seen.add(path)
                if len(seen) > MAX_PYTHON_FILES:
                    return found
                try:
                    if path.stat().st_size > MAX_PYTHON_BYTES:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if b"__dict__" in data or b"vars(" in data or b"__module__" in data:
                    found.append(InputFile(display_path(path, cwd), data, False))
    return found


def _find_include(includer: Path, name: str, resolve: Callable[[Path], Path] = Path.resolve) -> Path | None:
    """A quoted include: next to the includer, else in the folders above it up to the
    project root (where `-I src`-style include paths usually point). `resolve`: the run's
    (cached: a tree's files include the same headers from the same folders)."""
    target = includer.parent / name
    if target.is_file() or target.is_symlink():  # a dangling link is reported, not skipped
        return target
    root = _root_of(resolve(includer.parent))  # project_root() of a file
    for folder in resolve(includer).parents:
        candidate = folder / name
        if candidate.is_file():
            return candidate
        if folder == root:
            break
    return None


def _walk(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SOURCE_SUFFIXES):
                found.append(Path(dirpath) / name)
    return found
