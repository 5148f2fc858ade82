"""`porter verify` for a real package: built by its own build (so its macros, include folders,
libraries and generated headers apply), then imported in the main interpreter and in two
isolated subinterpreters, checked for static types and objects shared with the main
interpreter, and exercised by a smoke script and, when given, the package's own tests.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from porter.verify import BuildResult, Interpreter, Step, Verification, _child_steps, _config_vars, _run_checks

BUILD_TIMEOUT = 1800
DEFAULT_REQUIRES = ("setuptools>=68", "wheel")
# What a copy of a project for a build leaves out: earlier builds and version control.
SKIPPED_IN_COPIES = (".git", ".hg", "build", "dist", ".venv", "venv", "__pycache__", "*.so", "*.egg-info", ".tox")


@dataclass(frozen=True)
class PackageBuild:
    ok: bool
    site: Path | None  # where the wheel is installed (a folder for sys.path)
    extensions: dict[str, Path]  # import name -> the built extension
    log: str
    warnings: int = 0


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "porter"


def build_requires(project: Path) -> list[str]:
    """[build-system] requires of the project (setuptools and wheel when it says nothing)."""
    try:
        doc = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return list(DEFAULT_REQUIRES)
    requires = doc.get("build-system", {}).get("requires")
    return [r for r in requires if isinstance(r, str)] if isinstance(requires, list) and requires \
        else list(DEFAULT_REQUIRES)


def build_env(interpreter: Interpreter, requires: list[str], extra: list[str]) -> tuple[Path | None, str]:
    """A cached venv of `interpreter` with the build requirements (and `extra`, such as pytest)."""
    wanted = sorted(set(requires) | set(extra) | {"wheel"})
    key = hashlib.sha256("\n".join([str(interpreter.executable), *wanted]).encode()).hexdigest()[:12]
    venv = cache_dir() / "venvs" / f"{interpreter.version}-{key}"
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python, ""
    log = []
    for command in ([str(interpreter.executable), "-m", "venv", "--clear", str(venv)],
                    [str(python), "-m", "pip", "install", "-q", *wanted]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        log.append("$ " + " ".join(command) + "\n" + done.stdout + done.stderr)
        if done.returncode != 0:
            return None, "\n".join(log)
    (venv / ".ready").write_text("\n".join(wanted) + "\n")
    return python, "\n".join(log)


def build_package(project: Path, interpreter: Interpreter, workdir: Path,
                  extra: list[str] | None = None) -> PackageBuild:
    """The project's own build: `pip wheel --no-build-isolation` in a copy of the project (builds
    for several interpreters run side by side, and a build writes into its tree), installed
    under workdir/site."""
    import shutil

    python, log = build_env(interpreter, build_requires(project), list(extra or ()))
    if python is None:
        return PackageBuild(False, None, {}, log)
    source = workdir / "src" / project.name
    shutil.copytree(project, source, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED_IN_COPIES))
    project = source
    wheels, site = workdir / "wheels", workdir / "site"
    env = dict(os.environ, LC_ALL="C", PIP_DISABLE_PIP_VERSION_CHECK="1")
    steps = [[str(python), "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(wheels),
              str(project)]]
    texts = [log]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env, cwd=project)
        texts.append("$ " + " ".join(command) + "\n" + done.stdout + done.stderr)
        if done.returncode != 0:
            return PackageBuild(False, None, {}, "\n".join(texts))
    built = sorted(wheels.glob("*.whl"))
    if not built:
        return PackageBuild(False, None, {}, "\n".join(texts) + "\nno wheel was built")
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *map(str, built)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env)
    texts.append(done.stdout + done.stderr)
    if done.returncode != 0:
        return PackageBuild(False, None, {}, "\n".join(texts))
    suffix = _config_vars(Path(interpreter.executable))["EXT_SUFFIX"]
    extensions = {}
    for path in sorted(site.rglob(f"*{suffix}")):
        name = ".".join(path.relative_to(site).with_name(path.name[:-len(suffix)]).parts)
        extensions[name] = path
    text = "\n".join(texts)
    return PackageBuild(True, site, extensions, text, len(re.findall(r": warning: ", text)))


def find_module(build: PackageBuild, name: str) -> str | None:
    """The import name of a built extension, from its full name or its last part."""
    if name in build.extensions:
        return name
    found = [n for n in build.extensions if n.rsplit(".", 1)[-1] == name]
    return found[0] if len(found) == 1 else None


def verify_package(project: Path, modules: list[str], smoke: str, interpreters: list[Interpreter], workdir: Path,
                   test_command: str | None = None, test_requires: list[str] | None = None,
                   timeout: float = 300) -> Verification:
    """Build with each interpreter, then check every module; a failure is a Step, never an exception."""
    if not interpreters:
        return Verification((Step("-", "interpreters", False, "no CPython >= 3.12 found"),))

    def one(interpreter: Interpreter) -> list[Step]:
        build = build_package(project, interpreter, workdir / f"python{interpreter.version}", list(test_requires or ()))
        if not build.ok or build.site is None:
            tail = [line for line in build.log.splitlines() if line.strip()][-3:]
            return [Step(interpreter.version, "build", False, " | ".join(tail)[-400:])]
        steps = [Step(interpreter.version, "build", True, f"{build.warnings} warnings" if build.warnings else "")]
        for name in modules:
            full = find_module(build, name)
            if full is None:
                steps.append(Step(interpreter.version, "module", False,
                                  f"the build made no extension {name} ({', '.join(build.extensions) or 'none'})"))
                continue
            result = BuildResult(True, build.extensions[full], (), build.log)
            checked = _run_checks(interpreter, result, full, build.site, smoke or f"import {full}\n", None, 20, timeout)
            steps += [Step(s.interpreter, f"{full}:{s.name}" if len(modules) > 1 else s.name, s.ok, s.detail, s.data)
                      for s in checked]
        if test_command:
            steps.append(_run_tests(project, interpreter, build, test_command, list(test_requires or ()), timeout * 4))
        return steps

    with ThreadPoolExecutor(max_workers=len(interpreters)) as pool:
        steps = [s for run in [pool.submit(one, i) for i in interpreters] for s in run.result()]
    return Verification(tuple(steps))


def _run_tests(project: Path, interpreter: Interpreter, build: PackageBuild, command: str, requires: list[str],
               timeout: float) -> Step:
    """The package's own tests against the built extension (the venv's python first on PATH)."""
    python, why = build_env(interpreter, build_requires(project), requires)
    if python is None:
        return Step(interpreter.version, "tests", False, f"cannot install what the tests need: {why[-200:]}")
    env = dict(os.environ, PYTHONPATH=str(build.site), PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=project)
    except subprocess.TimeoutExpired:
        return Step(interpreter.version, "tests", False, f"timed out after {timeout:g}s")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return Step(interpreter.version, "tests", done.returncode == 0, lines[-1][-300:] if lines else "")


def is_package(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in ("pyproject.toml", "setup.py", "setup.cfg")) \
        and not (path / "fixture.toml").is_file()


__all__ = ["verify_package", "build_package", "is_package", "_child_steps", "sys"]
