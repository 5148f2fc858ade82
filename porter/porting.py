"""A port as the commands run it: the pipeline, then the compile check, then one status per
module. A module whose port does not compile contributes nothing to the new text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from porter.compile_check import CompileCheck, Toolchain, check_module, find_toolchains
from porter.model import Companions, FileProblem
from porter.pipeline import port_files
from porter.rewrite.planning.posture import always_atomic, atomic_counters
from porter.rewrite.port import ModulePort, PortResult
from porter.rewrite.vocab import PortStatus
from porter.status import Outcome, Status, isolation_of


@dataclass
class CheckedPort:
    result: PortResult
    outcomes: list[Outcome]
    checks: dict[str, CompileCheck] = field(default_factory=dict)  # module name -> its compile check
    toolchain: Toolchain | None = None
    withdrawn: dict[str, bytes] = field(default_factory=dict)  # new text of ports that did not compile

    @property
    def new_text(self) -> dict[str, bytes]:
        return self.result.new_text

    @property
    def failed(self) -> bool:
        return any(o.status is Status.FAILED for o in self.outcomes) or bool(self.result.problems)


def checked_port(files: list[tuple[str, bytes]], unsafe: bool = False, problems: list[FileProblem] | None = None,
                 companions: Companions | None = None, compile: bool = True, cwd: Path | None = None,
                 jobs: int | None = None, progress=None) -> CheckedPort:
    result = port_files(files, unsafe=unsafe, problems=problems, companions=companions or Companions(),
                        jobs=jobs, progress=progress)
    original = dict(files)
    toolchains: list[Toolchain] | str = "asked not to (--no-compile)"
    if compile and any(mp.status is PortStatus.PORTED for mp in result.modules):
        toolchains = find_toolchains()
    checks: dict[str, CompileCheck] = {}
    for mp in result.modules:
        if mp.status is PortStatus.PORTED and isinstance(toolchains, list):
            checks[mp.module.name] = check_module(mp.module, original, result.new_text, toolchains,
                                                  mp.module.build, cwd, tuple(mp.created))
    outcomes = [outcome(mp, checks.get(mp.module.name), toolchains if isinstance(toolchains, str) else "")
                for mp in result.modules]
    outcomes = _needed_files(result, outcomes)
    withdrawn: dict[str, bytes] = {}
    for mp, o in zip(result.modules, outcomes):
        if o.status is Status.FAILED and mp.status is PortStatus.PORTED:
            withdrawn.update(_withdraw(result, mp))
    # A file two modules share goes with either: the other module fails with it.
    for i, (mp, o) in enumerate(zip(result.modules, outcomes)):
        shared = sorted(set(mp.written) & set(withdrawn))
        if shared and o.status is not Status.FAILED and mp.status is PortStatus.PORTED:
            why = f"shares {shared[0]} with a module whose port failed"
            outcomes[i] = Outcome(o.module, o.file, Status.FAILED, why)
            withdrawn.update(_withdraw(result, mp))
    return CheckedPort(result, outcomes, checks, toolchains[0] if isinstance(toolchains, list) else None, withdrawn)


def outcome(mp: ModulePort, check: CompileCheck | None, not_compiled: str) -> Outcome:
    """The status porter can stand behind for one module."""
    m = mp.module
    if mp.status is PortStatus.FAILED:
        return Outcome(m.name, m.init.file, Status.FAILED, mp.reason)
    if mp.kept_on_purpose:
        return Outcome(m.name, m.init.file, Status.KEPT, mp.reason)
    if mp.status is PortStatus.NOTHING_TO_DO:
        found = isolation_of(m) or Status.ALREADY_ISOLATED
        why = "" if found is Status.ALREADY_ISOLATED else "multi-phase; porter found nothing more it can move"
        foreign = [f for f in m.findings if f.code == "foreign-thread"]
        if found is Status.NOT_ISOLATED and foreign:
            first = foreign[0]
            where = f"{first.file}:{first.function}()" if first.function else first.file
            why += (f"; it enters Python from a thread that never ran the interpreter ({where}): a claim of a GIL "
                    "per interpreter does not hold (see foreign-thread in the report)")
        return Outcome(m.name, m.init.file, found, why)
    if check is None:
        return Outcome(m.name, m.init.file, Status.NOT_COMPILED, not_compiled)
    if not check.compiled:
        return Outcome(m.name, m.init.file, Status.NOT_COMPILED, check.reason())
    if not check.ok:
        return Outcome(m.name, m.init.file, Status.FAILED, check.reason())
    conditional = mp.posture is not None and mp.posture.condition is not None
    # Globals kept only in builds with a condition porter cannot evaluate (`#ifdef MEMORY_DEBUG`)
    # weaken those builds only, and the slot table says so: the default build is whole.
    # A pacing counter stays plain only where the compiler has no C11 atomics (a condition too).
    atomic = atomic_counters(m, mp.kept)
    everywhere_atomic = always_atomic(m, atomic)
    kept = sorted({g.name for g in m.globals if g.key in mp.kept and g.key not in everywhere_atomic
                   and not (conditional and (g.condition or g.key in atomic))})
    weaker = mp.posture is not None and mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED" \
        and not conditional
    if kept or weaker:
        what = ", ".join(kept[:6]) + (f" and {len(kept) - 6} more" if len(kept) > 6 else "")
        return Outcome(m.name, m.init.file, Status.PARTIAL,
                       (f"{what} {'stays' if len(kept) == 1 else 'stay'} process-global" if kept else "")
                       or "; ".join(mp.posture.reasons[:1] if mp.posture else ()))
    return Outcome(m.name, m.init.file, Status.COMPILES)


def _withdraw(result: PortResult, mp: ModulePort) -> dict[str, bytes]:
    """A module whose port failed after the pipeline: none of its files change."""
    return {f: result.new_text.pop(f) for f in mp.written if f in result.new_text}


def _needed_files(result: PortResult, outcomes: list[Outcome]) -> list[Outcome]:
    """A file porter could not read costs the modules whose sources include it, and only them."""
    out = list(outcomes)
    for i, mp in enumerate(result.modules):
        for p in result.problems:
            if p.needed_by and p.needed_by in mp.module.files and out[i].status is not Status.FAILED:
                out[i] = Outcome(out[i].module, out[i].file, Status.FAILED,
                                 f"cannot read {p.file} (included by {p.needed_by}): {p.reason}")
    return out


def verify_ports(done: CheckedPort, project: Path, cwd: Path, smoke: str = "",
                 interpreters=None) -> None:
    """`porter port --verify`: build the patched project with its own build and check every module
    that compiles in isolated subinterpreters; it is `isolated` only if every step passes."""
    import shutil
    import tempfile

    from porter.package_verify import SKIPPED_IN_COPIES, verify_package
    from porter.verify import find_interpreters

    wanted = [i for i, o in enumerate(done.outcomes) if o.status is Status.COMPILES]
    if not wanted:
        return
    interpreters = interpreters if interpreters is not None else find_interpreters()
    with tempfile.TemporaryDirectory(prefix="porter-port-verify-") as tmp:
        copy = Path(tmp) / project.name
        shutil.copytree(project, copy, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED_IN_COPIES))
        for path, text in done.new_text.items():
            absolute = (cwd / path).resolve() if not Path(path).is_absolute() else Path(path)
            try:
                (copy / absolute.relative_to(project)).write_bytes(text)
            except ValueError:
                continue  # outside the project: cannot be part of its build
        names = [done.outcomes[i].module for i in wanted]
        result = verify_package(copy, names, smoke, interpreters, Path(tmp) / "work")
    for i in wanted:
        o = done.outcomes[i]
        mine = [s for s in result.steps if s.name in ("build", "tests") or s.name.split(":")[0] in (o.module, "")
                or len(names) == 1]
        failed = next((s for s in mine if not s.ok), None)
        if failed is None and mine:
            done.outcomes[i] = Outcome(o.module, o.file, Status.ISOLATED)
        else:
            detail = f"{failed.interpreter} {failed.name}: {failed.detail}" if failed else "nothing was checked"
            done.outcomes[i] = Outcome(o.module, o.file, Status.FAILED, f"verify: {detail}")
