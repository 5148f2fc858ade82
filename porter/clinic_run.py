"""Running a CPython tree's Argument Clinic on a port's new text: in a temporary copy of the
file and its generated `clinic/` files, with an interpreter the tree's build accepts for regen."""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from porter.cpython import CPythonTree

CLINIC_TIMEOUT = 300  # seconds: clinic on CPython's biggest file takes a few


@dataclass(frozen=True)
class ClinicRun:
    """Clinic run on one file: the new text of every file it rewrote, or why it could not run."""

    file: str
    interpreter: str  # as the report names it (`python3.11`)
    regenerated: dict[str, bytes] = field(default_factory=dict)
    error: str = ""


def regen_versions(tree: CPythonTree) -> list[tuple[int, int]]:
    """The Python versions the tree's build runs its generators with (configure.ac's
    PYTHON_FOR_REGEN candidates: `python$PACKAGE_VERSION python3.12 python3.11 python3.10`),
    newest first; the tree's own version when configure.ac does not say."""
    configure = tree.root / "configure.ac"
    text = configure.read_text(errors="replace") if configure.is_file() else ""
    m = re.search(r"AC_CHECK_PROGS\(\[PYTHON_FOR_REGEN\],\s*\[([^\]]*)\]", text)
    found = {tree.version}
    if m:
        found |= {(int(a), int(b)) for a, b in re.findall(r"python(\d+)\.(\d+)", m.group(1))}
    return sorted(found, reverse=True)


def clinic_interpreter(tree: CPythonTree) -> Path | None:
    """An interpreter for the tree's clinic: this one when the tree's build accepts its version,
    else a `pythonX.Y` on PATH it accepts, else the tree's own built `python`."""
    if not tree.clinic.is_file():
        return None
    versions = regen_versions(tree)
    if sys.version_info[:2] in versions:
        return Path(sys.executable)
    for major, minor in versions:
        found = shutil.which(f"python{major}.{minor}")
        if found:
            return Path(found)
    built = tree.root / "python"
    return built if built.is_file() and os.access(built, os.X_OK) else None


def run_clinic(tree: CPythonTree, interpreter: Path, file: str, texts: dict[str, bytes]) -> ClinicRun:
    """Run clinic on `file` as `texts` hold it (with the `clinic/` files next to it in `texts`);
    the files whose bytes it changed, by their paths in `texts`."""
    version = _version_of(interpreter)
    name = f"python{version[0]}.{version[1]}" if version else interpreter.name
    folder = posixpath.dirname(file)
    companions = {p: t for p, t in texts.items()
                  if posixpath.dirname(posixpath.dirname(p)) == folder and posixpath.basename(posixpath.dirname(p))
                  == "clinic"}
    with tempfile.TemporaryDirectory(prefix="porter-clinic-") as tmp:
        root = Path(tmp)
        copies = {file: root / posixpath.basename(file)}
        copies |= {p: root / "clinic" / posixpath.basename(p) for p in companions}
        for path, target in copies.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(texts[path])
        try:
            r = subprocess.run([str(interpreter), "-B", str(tree.clinic), copies[file].name], cwd=root,
                               capture_output=True, text=True, timeout=CLINIC_TIMEOUT,
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        except (OSError, subprocess.TimeoutExpired) as e:
            return ClinicRun(file, name, error=f"{tree.clinic.name} did not run ({e})")
        if r.returncode != 0:
            lines = [line for line in (r.stderr + r.stdout).splitlines() if line.strip()]
            return ClinicRun(file, name, error=f"clinic failed: {lines[-1] if lines else f'exit {r.returncode}'}")
        regenerated = {}
        for path, target in copies.items():
            new = target.read_bytes()
            if new != texts[path]:
                regenerated[path] = new
        for made in sorted((root / "clinic").glob("*")) if (root / "clinic").is_dir() else ():
            path = posixpath.join(folder, "clinic", made.name)
            if path not in copies:
                regenerated[path] = made.read_bytes()  # a generated file the file did not have yet
        return ClinicRun(file, name, regenerated)


def _version_of(interpreter: Path) -> tuple[int, int] | None:
    if Path(sys.executable) == interpreter:
        return sys.version_info[:2]
    m = re.search(r"python(\d+)\.(\d+)$", interpreter.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def port_running_clinic(analysis, unsafe: bool = False, multi_phase_is_done: bool = True):
    """The port, with Argument Clinic run on every file whose clinic input it changed.

    A module in CPython's tree, whose clinic porter can run, is planned with its clinic input
    open to change; clinic then regenerates each file the port changed the input of, and the new
    text takes its output. A module whose clinic run fails is planned again with its clinic input
    left alone (as without a tree), and its report says why.
    """
    from porter.cpython import cpython_tree
    from porter.rewrite.emit import Item
    from porter.rewrite.port import port
    from porter.rewrite.vocab import Applicability, PortStatus

    runnable: dict[str, tuple[CPythonTree, Path]] = {}
    for m in analysis.modules:
        tree = cpython_tree(Path(m.cpython_root)) if m.cpython_root and m.clinic_functions else None
        interpreter = clinic_interpreter(tree) if tree is not None else None
        if tree is not None and interpreter is not None:
            runnable[m.name] = (tree, interpreter)
    result = port(analysis, unsafe, multi_phase_is_done, regenerate_clinic=frozenset(runnable))
    runs: dict[str, list[ClinicRun]] = {}
    for mp in result.modules:
        files = sorted({e.file for e in mp.edits if e.step == "clinic-input"})
        if mp.status is not PortStatus.PORTED or mp.module.name not in runnable or not files:
            continue
        tree, interpreter = runnable[mp.module.name]
        texts = {f: result.new_text.get(f, analysis.sources[f].text) for f in mp.module.files
                 if f in analysis.sources or f in result.new_text}
        runs[mp.module.name] = [run_clinic(tree, interpreter, f, texts) for f in files]
    failed = frozenset(name for name, done in runs.items() if any(r.error for r in done))
    if failed:
        result = port(analysis, unsafe, multi_phase_is_done, regenerate_clinic=frozenset(runnable) - failed)
    for mp in result.modules:
        for r in runs.get(mp.module.name, ()):
            if mp.module.name in failed:
                why = r.error or "clinic failed on another file of the module"
                mp.items.append(Item("clinic-input", Applicability.MANUAL, r.file, None,
                                     f"porter changed no clinic input: Tools/clinic/clinic.py ({r.interpreter}) "
                                     f"could not regenerate {r.file} ({why}); clinic methods keep "
                                     "PyType_GetModuleByDef and the globals clinic output names stay global",
                                     False, ("clinic-run", r.file)))
                continue
            for path, text in r.regenerated.items():
                result.new_text[path] = text
                if path not in analysis.sources and path not in mp.created:
                    mp.created.append(path)
            mp.items.append(Item("clinic-input", Applicability.SAFE, r.file, None,
                                 f"ran Tools/clinic/clinic.py on {r.file}: the patch holds the "
                                 f"changed clinic input and the regenerated output "
                                 f"({', '.join(sorted(r.regenerated))})", True, ("clinic-run", r.file)))
    return result
