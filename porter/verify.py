"""Build an extension with each CPython found and check it in the main and in isolated subinterpreters."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import subprocess
import tempfile
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# What the child process reports, in the order reports show them.
CHILD_STEPS = ("main-import", "main-smoke", "surface", "sub1-import", "sub1-smoke", "sub2-import", "sub2-smoke",
               "shared-import", "shared-smoke")
# single-phase: porter ports it; not-isolated: multi-phase already, but porter has more to move;
# multi-phase: isolated already, nothing to do; none: not an extension module.
EXPECTATIONS = ("single-phase", "not-isolated", "multi-phase", "none")
PORTABLE = ("single-phase", "not-isolated")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".inc")

_OVERRIDE = re.compile(r"PORTER_PYTHON(\d)(\d+)")
_RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+)")  # pyenv names like 3.13.0t or 3.12-dev are other builds
# file:line:col: warning: message   (also "cc1: warning: ..." and "/usr/bin/ld: warning: ...")
_DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\n]+?)(?::(?P<line>\d+))?(?::\d+)?: (?P<kind>warning|(?:fatal )?error): (?P<message>.*)$"
)


@dataclass(frozen=True)
class Interpreter:
    version: str  # "3.12"
    executable: Path


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    extension: Path | None
    warnings: tuple[str, ...]  # normalised: "file.c: warning: message [-Wflag]"
    log: str


@dataclass(frozen=True)
class Step:
    interpreter: str
    name: str
    ok: bool
    detail: str = ""
    data: str = ""  # the step's full result when the detail only sums it up (surface: JSON)


@dataclass(frozen=True)
class Verification:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        # No step at all means nothing was checked, which is not a pass.
        return bool(self.steps) and all(step.ok for step in self.steps)

    def step(self, interpreter: str, name: str) -> Step | None:
        return next((s for s in self.steps if s.interpreter == interpreter and s.name == name), None)


@dataclass(frozen=True)
class Fixture:
    path: Path
    module: str
    sources: tuple[Path, ...]
    expect: str  # one of EXPECTATIONS
    summary: str
    smoke: str
    isolation: str | None
    # What `porter port` must achieve: "isolated" (every oracle step passes after the port) or
    # "partial" (porter reports what it cannot do; the port still builds and imports in the
    # main interpreter, and isolated subinterpreters still refuse it).
    port: str = "isolated"
    unsafe: bool = False  # port with --unsafe
    defines: tuple[tuple[str, str], ...] = ()  # -D macros its setup.py gives, as a build would
    # Modules the same sources define next to `module` (a unity build): ported with it, and
    # reached by its smoke test through the same shared object.
    also: tuple[str, ...] = ()
    # The original claims a GIL per interpreter that does not hold: isolated subinterpreters
    # accept it, and what it does there is undefined, so the oracle runs it in the main one only.
    false_claim: bool = False

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.module, *self.also)


PORT_EXPECTATIONS = ("isolated", "partial")


class FixtureError(ValueError):
    """A fixture folder that cannot be read as one."""


# -- interpreters


def _pyenv_root() -> Path:
    if root := os.environ.get("PYENV_ROOT"):
        return Path(root)
    try:
        answer = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        answer = None
    if answer is not None and answer.returncode == 0 and answer.stdout.strip():
        return Path(answer.stdout.strip())
    return Path.home() / ".pyenv"


def find_interpreters(minimum: tuple[int, int] = (3, 12)) -> list[Interpreter]:
    """The newest pyenv patch release of each CPython X.Y >= minimum; PORTER_PYTHON<X><Y>=path wins."""
    newest: dict[tuple[int, int], tuple[int, Path]] = {}
    versions = _pyenv_root() / "versions"
    if versions.is_dir():
        for folder in versions.iterdir():
            match = _RELEASE.fullmatch(folder.name)
            executable = folder / "bin" / "python3"
            if not match or not executable.exists():
                continue
            major, minor, patch = map(int, match.groups())
            if (major, minor) not in newest or patch > newest[(major, minor)][0]:
                newest[(major, minor)] = (patch, executable)
    found = {key: executable for key, (_, executable) in newest.items()}
    for name, value in os.environ.items():
        if (match := _OVERRIDE.fullmatch(name)) and value:
            found[(int(match[1]), int(match[2]))] = Path(value)
    return [
        Interpreter(f"{major}.{minor}", executable)
        for (major, minor), executable in sorted(found.items())
        if (major, minor) >= minimum
    ]


# -- building

_CONFIG_VARS = ("CC", "CFLAGS", "CCSHARED", "LDSHARED", "INCLUDEPY", "EXT_SUFFIX")


@functools.cache
def _config_vars(executable: Path) -> dict[str, str]:
    """The sysconfig variables of the target interpreter (not of the one running porter)."""
    code = f"import json, sysconfig; print(json.dumps({{k: sysconfig.get_config_var(k) for k in {_CONFIG_VARS!r}}}))"
    answer = subprocess.run([str(executable), "-I", "-c", code], capture_output=True, text=True, timeout=60)
    if answer.returncode != 0:
        raise OSError(answer.stderr.strip() or f"exit status {answer.returncode}")
    return {key: value or "" for key, value in json.loads(answer.stdout).items()}


def _compiler_flags(config: dict[str, str]) -> list[str]:
    # A -Werror from the interpreter's own build would turn porter's checks into build failures.
    flags = [f for f in shlex.split(config["CFLAGS"]) if not f.startswith("-Werror")]
    flags += shlex.split(config["CCSHARED"])
    return flags + [f for f in ("-Wall", "-fPIC", "-fdiagnostics-color=never") if f not in flags]


def normalise_diagnostic(line: str) -> str | None:
    """'/abs/dir/file.c:12:5: warning: m [-Wx]' -> 'file.c: warning: m [-Wx]'; None for other lines."""
    match = _DIAGNOSTIC.match(line.strip())
    if not match or match["kind"] != "warning":
        return None
    return f"{Path(match['file']).name}: warning: {match['message']}"


def _first_error(log: str) -> str:
    for line in log.splitlines():
        match = _DIAGNOSTIC.match(line.strip())
        if match and match["kind"] != "warning":
            where = Path(match["file"]).name + (f":{match['line']}" if match["line"] else "")
            return f"{where}: {match['kind']}: {match['message']}"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "build failed"


def build_extension(
    sources: Sequence[Path],
    module: str,
    interpreter: Interpreter,
    outdir: Path,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[tuple[str, str]] = (),
) -> BuildResult:
    """Compile and link `module` for `interpreter` into outdir; a failed build is a result, not an error.

    `defines`: the -D macros the package's build gives (its setup.py's define_macros)."""
    outdir = Path(outdir)
    log: list[str] = []
    try:
        config = _config_vars(Path(interpreter.executable))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return BuildResult(False, None, (), f"cannot ask {interpreter.executable} for its build settings: {exc}\n")
    sources = [Path(s).resolve() for s in sources]
    folders = dict.fromkeys([s.parent for s in sources] + [Path(d).resolve() for d in include_dirs])
    includes = [f"-I{folder}" for folder in folders] + [f"-I{config['INCLUDEPY']}"]
    includes += [f"-D{name}={value}" if value else f"-D{name}" for name, value in defines]
    # A dotted name is a namespace package folder; the init symbol uses the last part.
    *packages, leaf = module.split(".")
    target = outdir.joinpath(*packages, leaf + config["EXT_SUFFIX"])
    compiler = shlex.split(config["CC"]) or ["gcc"]
    linker = shlex.split(config["LDSHARED"]) or compiler + ["-shared"]
    # gcc quotes with Unicode quotes under a UTF-8 locale; keep warnings comparable across machines.
    env = dict(os.environ, LC_ALL="C")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        objdir_context = tempfile.TemporaryDirectory(prefix=f".{leaf}-build-", dir=outdir)
    except OSError as exc:
        return BuildResult(False, None, (), f"cannot build in {outdir}: {exc}\n")
    ok = True
    with objdir_context as objdir:
        objects = []
        commands = []
        units = [s for s in sources if s.suffix not in HEADER_SUFFIXES and not _included_by_another(s, sources)]
        for index, source in enumerate(units):
            obj = Path(objdir) / f"{index}-{source.stem}.o"
            objects.append(str(obj))
            commands.append(compiler + _compiler_flags(config) + includes + ["-c", str(source), "-o", str(obj)])
        commands.append(linker + objects + ["-o", str(target)])
        for command in commands:
            log.append("$ " + shlex.join(command))
            try:
                done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
            except (OSError, subprocess.SubprocessError) as exc:
                log.append(f"cannot run {command[0]}: {exc}")
                ok = False
                break
            log.append(done.stdout + done.stderr)
            if done.returncode != 0:
                ok = False
                break
    text = "\n".join(part.rstrip("\n") for part in log if part) + "\n"
    warnings = tuple(w for line in text.splitlines() if (w := normalise_diagnostic(line)))
    return BuildResult(ok, target if ok else None, warnings, text)


def _included_by_another(source: Path, sources: Sequence[Path]) -> bool:
    """A .c file another source `#include`s is compiled inside that one, not on its own."""
    pattern = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)
    for other in sources:
        if other == source:
            continue
        try:
            names = pattern.findall(other.read_bytes())
        except OSError:
            continue
        if any((other.parent / name.decode("utf-8", "replace")).resolve() == source for name in names):
            return True
    return False


# -- the checks in a child process


def _child_steps(isolation: bool) -> tuple[str, ...]:
    return CHILD_STEPS + (("isolation",) if isolation else ()) + ("heap-types", "second-load", "leak")


# glibc's own words about heap corruption say more than faulthandler's "Aborted".
_CRASH_LINES = re.compile(r"double free|invalid pointer|corrupted|malloc\(\)|^Fatal Python error")


def _crash_hint(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if _CRASH_LINES.search(line)), lines[-1] if lines else "")


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _run_checks(
    interpreter: Interpreter,
    build: BuildResult,
    module: str,
    builddir: Path,
    smoke: str,
    isolation: str | None,
    leak_cycles: int,
    timeout: float,
) -> list[Step]:
    """Run every import and check step for one interpreter in one child process."""
    config = {
        "module": module,
        "builddir": str(builddir),
        "extension": str(build.extension),
        "smoke": smoke,
        "isolation": isolation,
        "leak_cycles": leak_cycles,
    }
    results: dict[str, tuple] = {}
    running = done = None
    with resources.as_file(resources.files(__package__).joinpath("_verify_child.py")) as child:
        command = [str(interpreter.executable), "-I", "-X", "faulthandler", str(child)]
        try:
            process = subprocess.Popen(
                command,
                cwd=builddir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # so a timeout can kill anything the module started
            )
        except OSError as exc:
            return [Step(interpreter.version, name, False, f"cannot start {interpreter.executable}: {exc}")
                    for name in _child_steps(isolation is not None)]
        timed_out = False
        try:
            stdout, stderr = process.communicate(json.dumps(config).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
    for line in stdout.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "begin" in record:
            running = (record["begin"], record["where"])
        elif "step" in record:
            results[record["step"]] = (bool(record["ok"]), record["detail"], record.get("data", ""))
        elif record.get("done"):
            done = True

    names = list(_child_steps(isolation is not None))
    if "teardown" in results:
        names.append("teardown")
    if not done:
        stderr_text = stderr.decode("utf-8", "replace")
        if timed_out:
            what = f"timed out after {timeout:g}s"
        elif process.returncode < 0:
            what = f"crashed ({_signal_name(process.returncode)})"
        else:
            what = f"exited with status {process.returncode}"
        where = f" during {running[0]} in {running[1]}" if running else " before its first step"
        hint = _crash_hint(stderr_text) if not timed_out else ""
        failure = f"child process {what}{where}"
        # The step that was running takes the blame, else the first one without a
        # result; a crash while tearing down the subinterpreters gets a step of its own.
        if running and running[0] not in results:
            victim = running[0]
        else:
            victim = next((name for name in names if name not in results), "teardown")
        if victim not in names:
            names.append(victim)
        results[victim] = (False, failure + (f": {hint}" if hint else ""))
        for name in names:
            results.setdefault(name, (False, f"not run: {failure}"))
    return [Step(interpreter.version, name, *results[name]) for name in names]


def _verify_one(
    sources: Sequence[Path],
    module: str,
    smoke: str,
    interpreter: Interpreter,
    isolation: str | None,
    root: Path,
    leak_cycles: int,
    timeout: float,
    defines: Sequence[tuple[str, str]],
) -> list[Step]:
    builddir = root / f"python{interpreter.version}"
    build = build_extension(sources, module, interpreter, builddir, defines=defines)
    if not build.ok:
        detail = _first_error(build.log)
        skipped = [Step(interpreter.version, name, False, "skipped: build failed")
                   for name in _child_steps(isolation is not None)]
        return [Step(interpreter.version, "build", False, detail), *skipped]
    count = len(build.warnings)
    detail = f"{count} warning{'s' if count != 1 else ''}" if count else ""
    steps = _run_checks(interpreter, build, module, builddir, smoke, isolation, leak_cycles, timeout)
    return [Step(interpreter.version, "build", True, detail), *steps]


def verify(
    sources: Sequence[Path],
    module: str,
    smoke: str,
    interpreters: Sequence[Interpreter] | None = None,
    *,
    isolation: str | None = None,
    workdir: Path | None = None,
    leak_cycles: int = 50,
    timeout: float = 120,
    defines: Sequence[tuple[str, str]] = (),
) -> Verification:
    """Build and check `module` with every interpreter; each failure is a failed Step, never an exception."""
    if interpreters is None:
        interpreters = find_interpreters()
    if not interpreters:
        hint = "no CPython >= 3.12 found under pyenv; set PORTER_PYTHON312=/path/to/python3.12"
        return Verification((Step("-", "interpreters", False, hint),))
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    scratch = nullcontext(workdir) if workdir is not None else tempfile.TemporaryDirectory(prefix="porter-verify-")
    with scratch as root, ThreadPoolExecutor(max_workers=len(interpreters)) as pool:
        # Interpreters are independent processes: check them side by side.
        runs = [
            pool.submit(_verify_one, sources, module, smoke, interp, isolation, Path(root), leak_cycles, timeout,
                        defines)
            for interp in interpreters
        ]
        steps = [step for run in runs for step in run.result()]
    return Verification(tuple(steps))


# -- fixtures and reports


def load_fixture(folder: Path) -> Fixture:
    """Read folder/fixture.toml with its smoke.py and optional isolation.py."""
    folder = Path(folder)
    try:
        data = tomllib.loads((folder / "fixture.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FixtureError(f"{folder}: cannot read fixture.toml: {exc}") from None
    missing = [key for key in ("module", "sources", "expect", "summary") if key not in data]
    if missing:
        raise FixtureError(f"{folder / 'fixture.toml'}: missing {', '.join(missing)}")
    if data["expect"] not in EXPECTATIONS:
        raise FixtureError(f"{folder / 'fixture.toml'}: expect must be one of {', '.join(EXPECTATIONS)}")
    if not isinstance(data["sources"], list) or not all(isinstance(s, str) for s in data["sources"]):
        raise FixtureError(f"{folder / 'fixture.toml'}: sources must be a list of file names")
    smoke_path, isolation_path = folder / "smoke.py", folder / "isolation.py"
    if smoke_path.exists():
        smoke = smoke_path.read_text(encoding="utf-8")
    elif data["expect"] == "none":
        smoke = ""
    else:
        # An extension fixture without a smoke test would pass its smoke steps unchecked.
        raise FixtureError(f"{folder}: missing smoke.py")
    port = data.get("port", "isolated")
    if port not in PORT_EXPECTATIONS:
        raise FixtureError(f"{folder / 'fixture.toml'}: port must be one of {', '.join(PORT_EXPECTATIONS)}")
    also = data.get("also_modules", [])
    if not isinstance(also, list) or not all(isinstance(m, str) for m in also):
        raise FixtureError(f"{folder / 'fixture.toml'}: also_modules must be a list of module names")
    computed = data.get("computed_defines", {})
    if not isinstance(computed, dict) or not all(isinstance(v, str) for v in computed.values()):
        raise FixtureError(f"{folder / 'fixture.toml'}: computed_defines must map macro names to strings")
    return Fixture(
        path=folder,
        port=port,
        unsafe=bool(data.get("unsafe", False)),
        module=data["module"],
        sources=tuple(folder / name for name in data["sources"]),
        expect=data["expect"],
        summary=data["summary"],
        smoke=smoke,
        isolation=isolation_path.read_text(encoding="utf-8") if isolation_path.exists() else None,
        defines=_build_defines(folder) + tuple(sorted(computed.items())),
        also=tuple(also),
        false_claim=bool(data.get("original_claims_too_much", False)),
    )


def _build_defines(folder: Path) -> tuple[tuple[str, str], ...]:
    from porter.analyze.build_config import read_build_config

    files = [(name, (folder / name).read_bytes()) for name in ("setup.py", "setup.cfg", "pyproject.toml")
             if (folder / name).is_file()]
    return read_build_config(files).compiler_defines


def format_verification(verification: Verification) -> str:
    """A plain-text table, one row per step per interpreter, and a one-line verdict."""
    rows = [("python", "step", "result", "detail")]
    rows += [(s.interpreter, s.name, "ok" if s.ok else "FAIL", s.detail) for s in verification.steps]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + ("  " + row[3] if row[3] else "")
        for row in rows
    ]
    failed = sum(not s.ok for s in verification.steps)
    total = len(verification.steps)
    lines.append("verified: all steps ok" if verification.ok else f"FAILED: {failed} of {total} steps failed")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def surface_differences(before: str, after: str) -> list[str]:
    """What Python code would see differently, from two `surface` steps' data."""
    old, new = json.loads(before), json.loads(after)
    out = []

    def walk(path: str, a, b) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    out.append(f"{path}{key}: {'added' if key not in a else 'gone'}")
                else:
                    walk(f"{path}{key}.", a[key], b[key])
        elif isinstance(a, list) and isinstance(b, list) and path.endswith("attributes."):
            gone, added = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            if gone or added:
                out.append(f"{path[:-1]}: gone {gone}, added {added}")
        elif a != b:
            out.append(f"{path[:-1]}: {a!r} -> {b!r}")

    walk("", old, new)
    return out


def with_surface_kept(port: Verification, original: Verification) -> Verification:
    """`port`'s steps plus, per interpreter, whether Python sees the module as before the port."""
    steps = list(port.steps)
    for version in dict.fromkeys(s.interpreter for s in port.steps):
        before, after = original.step(version, "surface"), port.step(version, "surface")
        if before is None or after is None or not (before.ok and after.ok):
            steps.append(Step(version, "surface-kept", False,
                              "not compared: the original or the port did not import"))
            continue
        differences = surface_differences(before.data, after.data)
        steps.append(Step(version, "surface-kept", not differences,
                          "; ".join(differences) or "as before the port"))
    return Verification(tuple(steps))
