"""The compile check: every translation unit a port changed is compiled as it was and as it
is now, with the package's own macros, include folders and declared limited API; a diagnostic
the port adds makes the module fail. porter says "compiles" only for code it compiled.

This is I/O (temporary files, a compiler): the CLI calls it after the pipeline has produced
the new text, before anything is written.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from porter.analyze.build_config import BuildConfig
from porter.cpython import cpython_tree
from porter.model import ExtensionModule

# -Wall, and what GCC 14 turns into errors by default: older compilers only warn, and a port
# that relies on an implicit declaration crashes at run time.
FLAGS = ("-fsyntax-only", "-Wall", "-Werror=implicit-function-declaration",
         "-Werror=incompatible-pointer-types", "-Werror=int-conversion", "-Werror=implicit-int")
TIMEOUT = 120  # seconds per compile
_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)? (?P<kind>warning|error|fatal error): "
                         r"(?P<message>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Toolchain:
    cc: str
    python: str  # the interpreter whose headers are used
    version: str  # its X.Y
    include: str  # its INCLUDEPY
    more_includes: tuple[str, ...] = ()  # CPython's own tree: Include/internal, the build folder...
    defines: tuple[str, ...] = ()  # CPython's own tree: Py_BUILD_CORE_MODULE


@dataclass(frozen=True)
class Diagnostic:
    file: str  # the module file it is in (as porter shows it), or the header's name
    line: int
    kind: str  # warning or error
    message: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two diagnostics the same across the port (lines move)."""
        return (posixpath.basename(self.file), self.kind, self.message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class UnitCheck:
    unit: str  # the .c file compiled
    added: tuple[Diagnostic, ...]  # what the port added
    original_errors: tuple[Diagnostic, ...]  # the original did not compile here: nothing can be judged
    command: str = ""

    @property
    def ok(self) -> bool:
        return not self.added and not self.original_errors


@dataclass(frozen=True)
class CompileCheck:
    """The outcome for one module: every unit compiled (ok), or why it fails or was not judged."""

    units: tuple[UnitCheck, ...]
    toolchain: Toolchain | None
    skipped: str = ""  # why no compile was attempted

    @property
    def compiled(self) -> bool:
        return self.toolchain is not None and not self.skipped and bool(self.units) \
            and not any(u.original_errors for u in self.units)

    @property
    def ok(self) -> bool:
        return self.compiled and all(u.ok for u in self.units)

    @property
    def added(self) -> tuple[Diagnostic, ...]:
        return tuple(d for u in self.units for d in u.added)

    def reason(self) -> str:
        """One line: why the module fails, or why it was not judged ('' when it compiles)."""
        if self.skipped:
            return self.skipped
        broken = next((u for u in self.units if u.original_errors), None)
        if broken is not None:
            return (f"the original {broken.unit} does not compile here either ({broken.original_errors[0]}); "
                    "give porter the build's include folders")
        added = self.added
        if added:
            more = f" (and {len(added) - 1} more)" if len(added) > 1 else ""
            return f"the port does not compile cleanly: {added[0]}{more}"
        return ""


def find_toolchain() -> Toolchain | str:
    """A C compiler and the headers of the newest CPython >= 3.12 porter can find, or why not."""
    found = find_toolchains()
    return found[0] if isinstance(found, list) else found


def find_toolchains() -> list[Toolchain] | str:
    """A C compiler with the headers of each CPython >= 3.12 porter can find, newest first."""
    from porter.verify import _config_vars, find_interpreters

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return "no C compiler found (set CC)"
    found = []
    for interpreter in reversed(find_interpreters()):
        include = _config_vars(interpreter.executable).get("INCLUDEPY") or ""
        if include and Path(include, "Python.h").is_file():
            found.append(Toolchain(cc.split()[0], str(interpreter.executable), interpreter.version, include))
    return found or "no CPython >= 3.12 with its headers found (pyenv, or PORTER_PYTHON312=/path/to/python3.12)"


def translation_units(module: ExtensionModule, changed: set[str]) -> list[str]:
    """The module's .c files that a compiler sees as units and whose unit holds a changed file."""
    included = {target for _, target, _ in module.includes}
    return [f for f in module.files if f.endswith(".c") and f not in included
            and module.translation_unit(f) & changed]


def check_module(module: ExtensionModule, original: dict[str, bytes], new_text: dict[str, bytes],
                 toolchains: list[Toolchain] | Toolchain, config: BuildConfig | None,
                 cwd: Path | None = None, created: tuple[str, ...] = ()) -> CompileCheck:
    """Compile each changed unit before and after the port and keep what the port added.

    The headers of the newest CPython come first; when the original does not compile with them
    (a private API a newer release removed), the next older ones are tried.
    """
    if isinstance(toolchains, Toolchain):
        toolchains = [toolchains]
    changed = {f for f in module.files if f in new_text and new_text[f] != original.get(f)}
    units = translation_units(module, changed)
    if not units:
        return CompileCheck((), toolchains[0], "not compiled: no translation unit of its own changed (a header only)")
    cwd = cwd or Path.cwd()
    tree = cpython_tree(Path(module.cpython_root)) if module.cpython_root else None
    if tree is not None:
        # A module of CPython itself compiles against that tree's headers, as part of the core.
        if not tree.built:
            return CompileCheck((), toolchains[0], f"not compiled: the CPython tree at {tree.root} is not configured "
                                                   "(run ./configure there)")
        folders, defines = tree.module_flags(module.name)
        toolchains = [Toolchain(toolchains[0].cc, str(tree.root / "python"), f"{tree.version[0]}.{tree.version[1]}",
                                str(tree.root / "Include"), (*tree.include_dirs(), *folders),
                                ("Py_BUILD_CORE_MODULE", *defines))]
    extra = _project_include_dirs(module, original, cwd)
    first: CompileCheck | None = None
    with tempfile.TemporaryDirectory(prefix="porter-compile-") as tmp:
        before = _materialise(Path(tmp) / "a", module.files, original, {})
        after = _materialise(Path(tmp) / "b", tuple(module.files) + created, original, new_text)
        for toolchain in toolchains:
            results = []
            for unit in units:
                old, _ = _compile(toolchain, config, before, unit, cwd, extra)
                # Warnings porter's flags make errors (GCC 14's defaults) in the original are
                # its baseline like any warning; only other errors mean it does not compile.
                errors = tuple(d for d in old if d.kind == "error" and not _promoted(d))
                if errors:
                    results.append(UnitCheck(unit, (), errors))
                    break
                new, command = _compile(toolchain, config, after, unit, cwd, extra)
                results.append(UnitCheck(unit, tuple(_added(old, new)), (), command))
            check = CompileCheck(tuple(results), toolchain)
            if check.compiled:
                return check
            first = first or check
    assert first is not None
    return first


_SKIP = {".git", ".hg", "build", "dist", ".venv", "venv", "__pycache__", ".tox", "node_modules"}
MAX_SEARCHED_FILES = 20000


def _project_include_dirs(module: ExtensionModule, original: dict[str, bytes], cwd: Path) -> list[str]:
    """Folders of the project that hold headers the sources include but that sit neither next
    to them nor in a folder the build files name (`-Ideps/lib` computed at build time)."""
    from porter.inputs import project_root, quoted_includes

    wanted = set()
    for f in module.files:
        base = (cwd / f).resolve().parent
        for quoted in quoted_includes(original.get(f, b"")):
            name = quoted.decode("utf-8", "replace")
            if not (base / name).exists():
                wanted.add(name)
    if not wanted or not module.files:
        return []
    root = project_root((cwd / module.files[0]).resolve())
    found: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("."))
        seen += len(filenames)
        if seen > MAX_SEARCHED_FILES:
            break
        folder = Path(dirpath)
        for name in list(wanted):
            if (folder / name).is_file():
                top = str(folder)
                if top not in found:
                    found.append(top)
                wanted.discard(name)
        if not wanted:
            break
    return found


@dataclass(frozen=True)
class _Tree:
    root: Path  # the temporary folder
    where: dict[str, Path]  # module file -> its copy


def _materialise(root: Path, files: tuple[str, ...], original: dict[str, bytes], new: dict[str, bytes]) -> _Tree:
    """The module's files under `root` at their whole paths (root/work/pkg/src/x.c), so that
    `#include "pkg/x.h"` through a mirrored -I folder finds the rewritten copy, not the original."""
    absolute = {f: Path(f).resolve() if Path(f).is_absolute() else Path(os.path.abspath(f)) for f in files}
    where = {}
    for f, path in absolute.items():
        target = root / path.relative_to(path.anchor)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(new.get(f, original.get(f, b"")))
        where[f] = target
    return _Tree(root, where)


def _compile(toolchain: Toolchain, config: BuildConfig | None, tree: _Tree, unit: str,
             cwd: Path, extra: list[str] | None = None) -> tuple[list[Diagnostic], str]:
    """Compile one unit; its diagnostics with paths mapped back to the module's files."""
    from porter.inputs import project_root

    copies = {str(p): f for f, p in tree.where.items()}
    real = [(cwd / f).resolve().parent for f in tree.where]
    # Builds commonly search the project root (`-I.`) for `#include "pkg/x.h"`.
    real += [project_root((cwd / f).resolve()) for f in tree.where]
    if config is not None:
        real += [(cwd / d).resolve() for d in config.include_dirs]
    include_dirs: list[str] = []
    for folder in dict.fromkeys(real):
        # The copy first, then the real folder for the headers porter was not given.
        include_dirs += [str(tree.root / folder.relative_to(folder.anchor)), str(folder)]
    include_dirs += [d for d in extra or () if d not in include_dirs]
    command = [toolchain.cc, *FLAGS, *(f"-I{d}" for d in include_dirs), f"-I{toolchain.include}",
               *(f"-I{d}" for d in toolchain.more_includes), *(f"-D{d}" for d in toolchain.defines)]
    if config is not None:
        command += [f"-D{name}={value}" if value else f"-D{name}" for name, value in config.defines]
        if config.limited_api is not None:
            command.append(f"-DPy_LIMITED_API={config.limited_api.value}")
    command += ["-x", "c", str(tree.where[unit])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=tree.root)
        output = done.stderr
    except (OSError, subprocess.SubprocessError) as e:
        output = f"{tree.where[unit]}:0: error: the compiler did not run: {e}"
    found = []
    for m in _DIAGNOSTIC.finditer(output):
        path = m["file"]
        shown = copies.get(str(Path(path).resolve()) if not os.path.isabs(path) else path, path)
        found.append(Diagnostic(shown, int(m["line"]), "error" if "error" in m["kind"] else "warning",
                                m["message"].strip()))
    return found, " ".join(command[:1] + list(FLAGS) + ["..."])


def _promoted(d: Diagnostic) -> bool:
    """A warning one of FLAGS' -Werror= made an error."""
    return any(f"[{flag}]" in d.message for flag in FLAGS if flag.startswith("-Werror="))


def _added(old: list[Diagnostic], new: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics of `new` that `old` does not have (as many times as they are new)."""
    left = Counter(d.key for d in old)
    out = []
    for d in new:
        if left[d.key]:
            left[d.key] -= 1
        else:
            out.append(d)
    return out
