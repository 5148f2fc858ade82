"""Reading the files a command names: directories walked, quoted includes followed.

Part of the CLI's I/O layer: the pipeline itself only ever sees bytes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from porter.model import FileProblem

SOURCE_SUFFIXES = (".c", ".h")
MAX_FILE_BYTES = 32 * 1024 * 1024
_QUOTED_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.MULTILINE)
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


def display_path(path: Path, cwd: Path) -> str:
    try:
        return path.resolve().relative_to(cwd.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def collect_inputs(paths: list[str | Path], cwd: Path | None = None, follow_includes: bool = True) -> Inputs:
    cwd = cwd or Path.cwd()
    inputs = Inputs()
    seen: set[Path] = set()
    queue: list[tuple[Path, bool]] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            inputs.problems.append(FileProblem(str(raw), "no such file or directory"))
        elif p.is_dir():
            queue.extend((f, True) for f in _walk(p))
        else:
            queue.append((p, True))
    while queue:
        path, given = queue.pop(0)
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        shown = display_path(path, cwd)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                inputs.problems.append(FileProblem(shown, "file too large to scan"))
                continue
            data = path.read_bytes()
        except OSError as e:
            inputs.problems.append(FileProblem(shown, e.strerror or str(e)))
            continue
        if b"\0" in data[:8192]:
            inputs.problems.append(FileProblem(shown, "binary file"))
            continue
        inputs.files.append(InputFile(shown, data, given))
        if follow_includes:
            for m in _QUOTED_INCLUDE.finditer(data):
                target = path.parent / os.fsdecode(m.group(1))
                if target.is_file() and target.resolve() not in seen:
                    queue.append((target, False))
    return inputs


def _walk(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SOURCE_SUFFIXES):
                found.append(Path(dirpath) / name)
    return found
