"""Port CPython's own single-phase modules inside a CPython checkout and prove each port in-tree.

    python benchmarks/cpython_intree.py --tree /path/to/cpython [--modules _datetime,readline]
        [--no-refleaks] [--out table.md] [--keep-logs DIR]

The tree is a git checkout of CPython (v3.12.0 for issue 12), configured `--with-pydebug` and
built (`./configure --with-pydebug && make -j2`; the script builds it when `./python` is
missing). It is never committed: fetch it at run time. For each module the script runs porter
in CPython mode (the tree is detected from the paths) from the tree's root, applies the patch
with `git apply`, rebuilds with `make -j2`, and checks:

- builds with no new warning: the make output's warnings for the module's files, against the
  same files rebuilt unpatched (messages compared without line numbers);
- the module's regression tests (`./python -m test test_X -j1`) and `-R 3:3`;
- an import in the main interpreter and in two isolated subinterpreters at once
  (`_xxsubinterpreters.create(isolated=True)`; `_tracemalloc` is builtin, and a builtin was never
  refused in 3.12, so its column proves nothing about the port);
- a re-import in a fresh `./python -c` (`del sys.modules[M]`, import again);
- `./python Tools/clinic/clinic.py -f FILE` on every patched `.c` file changes nothing.

Between modules the tree is restored (`git checkout -- .` and the files the patch created are
removed); at the end it is restored and rebuilt. Prints a markdown table and, for each module
porter does not fully port, the reason from porter's report.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    name: str
    sources: tuple[str, ...]  # what porter is given (files or folders, relative to the tree)
    tests: tuple[str, ...]
    test_args: tuple[str, ...] = ()
    gui: bool = False  # tests that need an X display (run under xvfb-run when it is there)
    refleaks: bool = True


TESTCAPI_PARTS = ("vectorcall", "vectorcall_limited", "heaptype", "abstract", "unicode", "dict", "getargs",
                  "pytime", "datetime", "docstring", "mem", "watchers", "long", "float", "structmember",
                  "exceptions", "code", "buffer", "pyos", "immortal", "heaptype_relative", "gc")

# The modules v3.12.0 still initialises single-phase and not on purpose (see cpython-notes.md).
TARGETS = (
    Target("_ctypes", tuple(f"Modules/_ctypes/{f}" for f in
                            ("_ctypes.c", "callbacks.c", "callproc.c", "stgdict.c", "cfield.c")), ("test_ctypes",)),
    Target("_curses", ("Modules/_cursesmodule.c",), ("test_curses",), ("-u", "curses")),
    Target("_datetime", ("Modules/_datetimemodule.c",), ("test_datetime",)),
    Target("_decimal", ("Modules/_decimal/_decimal.c",), ("test_decimal",)),
    Target("_tkinter", ("Modules/_tkinter.c", "Modules/tkappinit.c"),
           ("test_tcl", "test_ttk_textonly", "test_tkinter", "test_ttk"), ("-u", "gui"), gui=True),
    Target("_tracemalloc", ("Modules/_tracemalloc.c",), ("test_tracemalloc",)),
    Target("ossaudiodev", ("Modules/ossaudiodev.c",), ("test_ossaudiodev",), ("-u", "audio"), refleaks=False),
    Target("readline", ("Modules/readline.c",), ("test_readline",)),
    Target("_testbuffer", ("Modules/_testbuffer.c",), ("test_buffer",)),
    Target("_testcapi", ("Modules/_testcapimodule.c",) + tuple(f"Modules/_testcapi/{p}.c" for p in TESTCAPI_PARTS),
           ("test_capi",)),
    Target("_testclinic", ("Modules/_testclinic.c",), ("test_clinic",)),
    Target("_xxtestfuzz", ("Modules/_xxtestfuzz",), ("test_xxtestfuzz",)),
)

TEST_TIMEOUT = 300  # seconds per test file

COLUMNS = ("module", "porter status", "patch applied", "builds w/o new warning", "tests", "refleaks",
           "isolated import", "re-import", "clinic unchanged")

# gcc: `Modules/x.c:12:5: warning: message [-Wflag]`
_WARNING = re.compile(r"^(?P<file>[^:\s]+\.[ch]):\d+(?::\d+)?: warning: (?P<msg>.*)$", re.MULTILINE)
_RESULT = re.compile(r"^Result: (.+)$", re.MULTILINE)
_TOTAL = re.compile(r"^Total tests: (.+)$", re.MULTILINE)
_STATUS = re.compile(r"^porter: (?P<module>[^:]+): (?P<status>[^:\n]+)(?::(?P<why>.*))?$", re.MULTILINE)


class Refused(Exception):
    """Bad input: one line for the user, no traceback."""


@dataclass
class Row:
    target: Target
    cells: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def set(self, column: str, value: str) -> None:
        self.cells[column] = value


def run(argv: list[str], cwd: Path, timeout: float = 3600, env: dict[str, str] | None = None) \
        -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, -9, _text(e.stdout), _text(e.stderr) + f"\ntimed out after {timeout}s")


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def check_tree(tree: Path) -> None:
    if not tree.is_dir():
        raise Refused(f"--tree {tree}: no such folder")
    for needed in ("Include/patchlevel.h", "Tools/clinic/clinic.py", "configure"):
        if not (tree / needed).is_file():
            raise Refused(f"--tree {tree}: not a CPython checkout (no {needed})")
    if run(["git", "rev-parse", "--git-dir"], tree).returncode != 0:
        raise Refused(f"--tree {tree}: not a git checkout (the script restores it with git)")
    dirty = changed_files(tree)
    if dirty:
        raise Refused(f"--tree {tree}: has local changes ({', '.join(sorted(dirty)[:3])}...); "
                      "restore it first (git checkout -- . and remove untracked files)")


def changed_files(tree: Path) -> set[str]:
    """Tracked files that differ from HEAD and untracked files (build outputs are ignored)."""
    out = run(["git", "status", "--porcelain", "--untracked-files=all"], tree).stdout
    return {line[3:] for line in out.splitlines() if line.strip()}


def untracked_files(tree: Path) -> set[str]:
    """Files git does not know and does not ignore: what a patch created."""
    out = run(["git", "ls-files", "--others", "--exclude-standard"], tree).stdout
    return {line for line in out.splitlines() if line.strip()}


def tree_version(tree: Path) -> str:
    text = (tree / "Include" / "patchlevel.h").read_text(errors="replace")
    m = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', text)
    return m.group(1) if m else "?"


def make(tree: Path, log: Path) -> tuple[bool, str]:
    r = run(["make", "-j2"], tree, timeout=3600)
    output = r.stdout + r.stderr
    log.write_text(output)
    failed = re.search(r"(\d+) failed on import", output)
    return r.returncode == 0 and not (failed and int(failed.group(1))), output


def build_failure(output: str) -> str:
    """Why make failed, in a few words: the first compiler error, or a crash in make's own
    import check of the built modules."""
    error = re.search(r"^([^:\s]+\.[ch]):\d+(?::\d+)?: error: (.*)$", output, re.MULTILINE)
    if error:
        return f"compile error ({os.path.basename(error.group(1))}: {error.group(2)[:60]})"
    if "Fatal Python error" in output or re.search(r"[1-9]\d* failed on import", output):
        assertion = re.search(r"Assertion [^\n]*failed[^\n]*", output)
        return "crashes in make's import check" + (f" ({assertion.group(0)[:70]})" if assertion else "")
    return "make failed"


def warnings_for(output: str, files: set[str]) -> set[tuple[str, str]]:
    found = set()
    for m in _WARNING.finditer(output):
        path = os.path.normpath(m.group("file"))
        if path in files:
            found.add((path, m.group("msg").strip()))
    return found


def module_files(tree: Path, target: Target) -> set[str]:
    files = set()
    for source in target.sources:
        path = tree / source
        if path.is_dir():
            files |= {str(p.relative_to(tree)) for p in path.rglob("*") if p.suffix in (".c", ".h")}
        else:
            files.add(source)
    return files


def pristine_warnings(tree: Path, target: Target, logs: Path) -> set[tuple[str, str]] | None:
    """The warnings the unpatched module's files give when they are rebuilt."""
    files = module_files(tree, target)
    for f in files:
        if f.endswith(".c"):
            os.utime(tree / f)
    ok, output = make(tree, logs / f"{target.name}.make-pristine.log")
    return warnings_for(output, files) if ok else None


def porter_port(porter: list[str], tree: Path, target: Target, logs: Path) -> tuple[str, Path | None, Path]:
    patch, report = logs / f"{target.name}.patch", logs / f"{target.name}.report.md"
    r = run(porter + ["port", *target.sources, "-o", str(patch), "--report", str(report), "--force", "--keep-going"],
            tree, timeout=1800)
    (logs / f"{target.name}.porter.log").write_text(r.stdout + r.stderr)
    statuses = [m for m in _STATUS.finditer(r.stderr) if m.group("module") == target.name] \
        or list(_STATUS.finditer(r.stderr))
    if r.returncode not in (0, 1) or not statuses:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"error (exit {r.returncode}: {last[:80]})", None, report
    status = statuses[0].group("status").strip()
    has_patch = patch.is_file() and patch.stat().st_size > 0
    return status, (patch if has_patch else None), report


def report_reasons(report: Path, target: Target) -> list[str]:
    """What porter says it left undone: the posture and the headings of 'Left to you'."""
    if not report.is_file():
        return []
    text = report.read_text(errors="replace")
    reasons = []
    posture = re.search(r"^- Py_mod_multiple_interpreters: `([^`]+)`", text, re.MULTILINE)
    if posture and posture.group(1) != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED":
        reasons.append(f"posture {posture.group(1)}")
    left = text.split("### Left to you", 1)
    by_code: dict[str, list[int]] = {}
    if len(left) == 2:
        for m in re.finditer(r"^#### (.+?)\n(.*?)(?=^#### |^## |\Z)", left[1], re.MULTILINE | re.DOTALL):
            code = re.search(r"\(`([\w-]+)`\)\s*$", m.group(1))
            items = len(re.findall(r"^- \[ \]", m.group(2), re.MULTILINE))
            counts = by_code.setdefault(code.group(1) if code else m.group(1)[:60], [0, 0])
            counts[0] += items
            counts[1] += 1
    for code, (items, places) in by_code.items():
        reasons.append(f"`{code}` {items} item{'s' * (items != 1)}"
                       + (f" in {places} places" if places > 1 else ""))
    return reasons


def regrtest(python: Path, tree: Path, target: Target, logs: Path, refleaks: bool) -> str:
    # regrtest's own --timeout ends a hung test file with a traceback; the longest baseline run
    # (test_capi -R 3:3) takes under a minute.
    argv = [str(python), "-m", "test", *target.tests, "-j1", f"--timeout={TEST_TIMEOUT}", *target.test_args] \
        + (["-R", "3:3"] if refleaks else [])
    env = dict(os.environ, TERM=os.environ.get("TERM", "xterm"))
    if target.gui:
        if shutil.which("xvfb-run"):
            argv = ["xvfb-run", "-a", *argv]
        else:
            argv = [a for a in argv if a != "gui"]
    r = run(argv, tree, timeout=3600, env=env)
    kind = "refleaks" if refleaks else "tests"
    (logs / f"{target.name}.{kind}.log").write_text(r.stdout + r.stderr)
    result = _RESULT.findall(r.stdout)
    total = _TOTAL.findall(r.stdout)
    outcome = result[-1] if result else f"exit {r.returncode}"
    if refleaks and re.search(r"leaked \[", r.stdout):
        outcome += " (leaked)"
    crash = re.search(r"^.*?(\w+: Assertion .* failed)", r.stdout + r.stderr, re.MULTILINE)
    if crash:
        outcome += f" (crash: {crash.group(1)[:90]})"
    counts = total[-1] if total else ""
    if outcome == "SUCCESS":
        run_count = re.search(r"run=([\d,]+)", counts)
        return f"pass ({run_count.group(1)})" if run_count else "pass"
    return f"FAIL: {outcome}"


ISOLATED = """
import sys, _xxsubinterpreters as I
import {m}
a, b = I.create(isolated=True), I.create(isolated=True)
try:
    I.run_string(a, 'import {m}')
    I.run_string(b, 'import {m}')
finally:
    I.destroy(a)
    I.destroy(b)
"""

REIMPORT = "import sys, {m}\ndel sys.modules['{m}']\nimport {m}\n"


def python_check(python: Path, tree: Path, code: str, target: Target, logs: Path, kind: str) -> str:
    r = run([str(python), "-W", "ignore::DeprecationWarning", "-c", code.format(m=target.name)], tree, timeout=600)
    (logs / f"{target.name}.{kind}.log").write_text(r.stdout + r.stderr)
    if r.returncode == 0:
        return "ok"
    if "does not support loading in subinterpreters" in r.stderr:
        return "refused (posture)"
    last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return f"FAIL: {last[:100]}"


def clinic_unchanged(python: Path, tree: Path, files: list[str], logs: Path, target: Target) -> str:
    """Re-run clinic on every patched .c file; any change to the tree is a failure."""
    before = run(["git", "diff"], tree).stdout, changed_files(tree)
    log = []
    for f in files:
        r = run([str(python), "Tools/clinic/clinic.py", "-f", f], tree, timeout=600)
        log.append(f"$ clinic.py -f {f}  (exit {r.returncode})\n{r.stdout}{r.stderr}")
        if r.returncode != 0:
            (logs / f"{target.name}.clinic.log").write_text("\n".join(log))
            return f"FAIL: clinic exit {r.returncode} on {f}"
    (logs / f"{target.name}.clinic.log").write_text("\n".join(log))
    after = run(["git", "diff"], tree).stdout, changed_files(tree)
    if after != before:
        moved = sorted((after[1] ^ before[1]) | {f for f in after[1] if f in before[1]})
        return f"FAIL: clinic rewrote ({len(moved)} files changed)"
    return f"yes ({len(files)})"


def restore(tree: Path, created: set[str]) -> None:
    """Tracked files back to HEAD; the untracked files the patch created removed."""
    run(["git", "checkout", "--", "."], tree)
    for f in created & untracked_files(tree):
        (tree / f).unlink()


def patched_files(patch: Path) -> list[str]:
    return sorted({m.group(1) for m in re.finditer(r"^\+\+\+ b/(\S+)", patch.read_text(errors="replace"),
                                                   re.MULTILINE)})


def check_module(target: Target, tree: Path, porter: list[str], logs: Path, refleaks: bool) -> Row:
    row = Row(target)
    python = tree / "python"
    row.set("module", target.name)
    status, patch, report = porter_port(porter, tree, target, logs)
    row.set("porter status", status)
    row.reasons = report_reasons(report, target)
    skipped = "—"
    if patch is None:
        for column in COLUMNS[2:]:
            row.set(column, skipped)
        return row
    baseline = pristine_warnings(tree, target, logs)
    before = untracked_files(tree)
    applied = run(["git", "apply", "--whitespace=nowarn", str(patch)], tree)
    created = untracked_files(tree) - before
    if applied.returncode != 0:
        (logs / f"{target.name}.apply.log").write_text(applied.stderr)
        row.set("patch applied", f"no: {(applied.stderr.strip().splitlines() or ['?'])[0][:80]}")
        for column in COLUMNS[3:]:
            row.set(column, skipped)
        restore(tree, created)
        return row
    row.set("patch applied", "yes")
    try:
        built, output = make(tree, logs / f"{target.name}.make-port.log")
        if not built:
            row.set("builds w/o new warning", "no: " + build_failure(output))
            for column in COLUMNS[4:8]:
                row.set(column, skipped)
        else:
            files = module_files(tree, target) | {f for f in created if f.endswith((".c", ".h"))}
            new = warnings_for(output, files) - (baseline or set())
            row.set("builds w/o new warning", "yes" if not new else f"no: {len(new)} new ({sorted(new)[0][1][:60]})")
            row.set("tests", regrtest(python, tree, target, logs, refleaks=False))
            row.set("refleaks", regrtest(python, tree, target, logs, refleaks=True)
                    if refleaks and target.refleaks else "not run")
            row.set("isolated import", python_check(python, tree, ISOLATED, target, logs, "isolated"))
            row.set("re-import", python_check(python, tree, REIMPORT, target, logs, "reimport"))
        c_files = [f for f in patched_files(patch) if f.endswith(".c")]
        row.set("clinic unchanged", clinic_unchanged(python, tree, c_files, logs, target))
    finally:
        restore(tree, created)
    return row


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(row.cells.get(c, "").replace("|", "\\|") for c in COLUMNS) + " |")
    reasons = [(row.target.name, row.reasons) for row in rows if row.reasons]
    if reasons:
        lines += ["", "What porter does not fully port, in its own report's words:", ""]
        for name, why in reasons:
            lines.append(f"- `{name}`: " + "; ".join(why))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="a CPython git checkout (never committed)")
    parser.add_argument("--modules", default="", help="comma-separated subset of: "
                        + ", ".join(t.name for t in TARGETS))
    parser.add_argument("--porter", default=f"{sys.executable} -m porter",
                        help="the porter command (default: this interpreter's porter)")
    parser.add_argument("--no-refleaks", action="store_true", help="skip the -R 3:3 runs")
    parser.add_argument("--keep-logs", type=Path, help="keep patches, reports and logs in this folder")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    try:
        tree = args.tree.resolve()
        check_tree(tree)
        by_name = {t.name: t for t in TARGETS}
        wanted = [m.strip() for m in args.modules.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in by_name]
        if unknown:
            raise Refused(f"--modules: unknown module {unknown[0]!r} (known: {', '.join(by_name)})")
        targets = [by_name[m] for m in wanted] if wanted else list(TARGETS)
        if args.out and args.out.exists() and args.out.is_dir():
            raise Refused(f"--out {args.out}: is a folder")
    except Refused as e:
        print(f"cpython_intree: {e}", file=sys.stderr)
        return 2
    logs = args.keep_logs.resolve() if args.keep_logs else Path(tempfile.mkdtemp(prefix="cpython-intree-"))
    logs.mkdir(parents=True, exist_ok=True)
    porter = args.porter.split()
    if not (tree / "python").exists():
        print("building the tree: ./configure --with-pydebug && make -j2", file=sys.stderr)
        if run(["./configure", "--with-pydebug"], tree).returncode != 0 or not make(tree, logs / "make.log")[0]:
            print(f"cpython_intree: the tree at {tree} does not build (see {logs})", file=sys.stderr)
            return 1
    rows = []
    started = time.monotonic()
    try:
        for target in targets:
            t0 = time.monotonic()
            rows.append(check_module(target, tree, porter, logs, refleaks=not args.no_refleaks))
            print(f"{target.name}: {time.monotonic() - t0:.0f}s  " + ", ".join(
                f"{c}={rows[-1].cells.get(c, '')}" for c in COLUMNS[1:]), file=sys.stderr)
    finally:
        restore(tree, set())
        make(tree, logs / "make-restored.log")
    out = (f"CPython {tree_version(tree)} (pydebug), porter `{' '.join(porter)}`, "
           f"{time.monotonic() - started:.0f}s; logs in {logs if args.keep_logs else 'a temporary folder'}\n\n"
           + table(rows))
    print(out)
    if args.out:
        args.out.write_text(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
