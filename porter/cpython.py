"""CPython's own tree: porter knows it when a source sits under one (Tools/clinic/clinic.py and
Include/patchlevel.h above it), and then targets that tree's version and headers."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

# Modules CPython's tests use to test module initialisation itself (single-phase on purpose,
# or multi-phase in deliberately odd ways): porter leaves them as they are.
SINGLE_PHASE_ON_PURPOSE = ("_testsinglephase", "_testimportmultiple", "_test_module_state_shared",
                           "_testmultiphase", "_testmultiphase_")


@dataclass(frozen=True)
class CPythonTree:
    root: Path
    version: tuple[int, int]  # the tree's PY_MAJOR_VERSION, PY_MINOR_VERSION

    @property
    def built(self) -> bool:
        """Configured (pyconfig.h exists), so its headers compile."""
        return (self.root / "pyconfig.h").is_file()

    def include_dirs(self) -> list[str]:
        return [str(self.root / "Include"), str(self.root / "Include" / "internal"), str(self.root),
                str(self.root / "Modules")]

    def module_flags(self, module_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The include folders and defines configure gave a module (`MODULE__TKINTER_CFLAGS=
        -I/usr/include/tcl8.6 -DWITH_APPINIT=1` in the tree's Makefile): (folders, NAME[=VALUE])."""
        makefile = self.root / "Makefile"
        if not makefile.is_file():
            return (), ()
        m = re.search(rf"^MODULE_{re.escape(module_name.upper())}_CFLAGS\s*=(.*)$",
                      makefile.read_text(errors="replace"), re.MULTILINE)
        if m is None:
            return (), ()
        words = m.group(1).replace("$(srcdir)", str(self.root)).split()
        return (tuple(w[2:] for w in words if w.startswith("-I") and len(w) > 2),
                tuple(w[2:] for w in words if w.startswith("-D") and len(w) > 2))

    @property
    def clinic(self) -> Path:
        return self.root / "Tools" / "clinic" / "clinic.py"


def cpython_tree(path: Path) -> CPythonTree | None:
    """The CPython source tree `path` belongs to, if any."""
    start = (path if path.is_dir() else path.parent).resolve()
    return _tree_at(start)


@functools.cache
def _tree_at(start: Path) -> CPythonTree | None:
    for folder in (start, *start.parents):
        patchlevel = folder / "Include" / "patchlevel.h"
        if patchlevel.is_file() and (folder / "Tools" / "clinic" / "clinic.py").is_file():
            text = patchlevel.read_text(errors="replace")
            major = re.search(r"#define\s+PY_MAJOR_VERSION\s+(\d+)", text)
            minor = re.search(r"#define\s+PY_MINOR_VERSION\s+(\d+)", text)
            if major and minor:
                return CPythonTree(folder, (int(major.group(1)), int(minor.group(1))))
    return None


# Files that hold only such modules (`_testmultiphase.c` also defines `x`, `_test_non_isolated`).
ON_PURPOSE_FILES = ("_testsinglephase.c", "_testmultiphase.c", "_testimportmultiple.c")


def kept_single_phase(module_name: str, init_file: str = "") -> bool:
    """A module CPython's tests use to test module initialisation itself."""
    return any(module_name.startswith(prefix) for prefix in SINGLE_PHASE_ON_PURPOSE) \
        or init_file.rsplit("/", 1)[-1] in ON_PURPOSE_FILES
