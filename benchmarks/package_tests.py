"""Behaviour kept, by the package's own tests: each test's outcome on the original build and the port.

    python benchmarks/package_tests.py [--corpus FILE] [--only NAME] [--pythons 3.12,3.13] [--json PATH]

For every package of a corpus in the shared harness's format (../shared/realworld/corpus.toml,
benchmarks/corpus.toml) that has a `tests` command (its own field, or a row of
benchmarks/shared_tests.toml), and for every Python asked for:

1. download the pinned sdist (sha256 checked), build it as it is (ORIGINAL) and with porter's
   patch (`porter port {files} --output {patch}` run from the sdist root), with the shared
   harness's own download, patch and build code (its cache layout, in a cache of our own);
2. run `tests` from a fresh unpacked sdist root, once per build, with the same interpreter: a
   venv per (Python, test_deps) holding only what `test_deps` names, installed from the local
   pip index only (a dependency that index lacks makes the row `no deps`, never a download from
   elsewhere), and the build's files first on PYTHONPATH;
3. record every test's outcome from inside the test processes (pkgtests_hook/: a pytest plugin
   and a unittest result hook) together with the file each extension module was loaded from,
   which must be inside that build: a run that loaded the extension from anywhere else, or not
   at all, proves nothing and says so;
4. compare test by test. A regression is a test that passes on the original and does not pass
   (fails, errors, is skipped, or is missing) on the port.

Exit status: 1 when any regression was found, 2 on bad input, else 0.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_HARNESS = REPO.parent / "shared" / "realworld" / "realworld.py"
DEFAULT_CORPUS = HERE / "corpus.toml"
DEFAULT_TESTS_TABLE = HERE / "shared_tests.toml"
DEFAULT_CACHE = os.environ.get("PORTER_PKGTESTS_CACHE", os.path.join(tempfile.gettempdir(), "porter-pkgtests-cache"))
HOOK_DIR = HERE / "pkgtests_hook"

# outcome -> the column it is counted in; a regression is "pass" on the original and anything
# else on the port.
COLUMN = {"passed": "pass", "xpassed": "pass", "failed": "fail", "error": "fail",
          "skipped": "skip", "xfailed": "skip"}
# when one test id is reported more than once (two runs in one command), the worst one counts
WORST = ["passed", "xpassed", "skipped", "xfailed", "failed", "error"]


class BadInput(Exception):
    """Something the user gave cannot be used: one line, no traceback."""


@dataclass
class Run:
    """One test run: per-test outcomes and what the extension modules were loaded from."""

    status: str = ""          # ok, no deps, build FAIL, ext not built here, timeout, ...
    rc: int | str | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    loaded: dict[str, list[str]] = field(default_factory=dict)
    detail: str = ""
    log: str = ""
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0}
        for o in self.outcomes.values():
            out[COLUMN[o]] += 1
        return out


@dataclass
class Row:
    package: str
    python: str
    status: str
    original: Run
    ported: Run
    regressions: dict[str, str] = field(default_factory=dict)   # test id -> port outcome
    fixed: list[str] = field(default_factory=list)              # failed on the original, pass on the port
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def load_harness(path: Path) -> ModuleType:
    if not path.is_file():
        raise BadInput(f"shared harness not found: {path} (pass --harness)")
    spec = importlib.util.spec_from_file_location("realworld", path)
    if spec is None or spec.loader is None:
        raise BadInput(f"cannot load the shared harness {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_toml(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise BadInput(f"{what} not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{what} {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise BadInput(f"cannot read {what} {path}: {e.strerror}") from None


def load_packages(corpus: Path, tests_table: Path | None) -> list[dict]:
    """The corpus entries, each with `tests`, `test_deps`, `test_apt` (from the table when the corpus has none)."""
    data = read_toml(corpus, "corpus")
    pkgs = data.get("package")
    if not isinstance(pkgs, list) or not pkgs:
        raise BadInput(f"corpus {corpus} has no [[package]] entries")
    extra: dict[str, dict] = {}
    if tests_table is not None and tests_table.exists():
        for row in read_toml(tests_table, "tests table").get("package", []):
            if not isinstance(row, dict) or "name" not in row or "tests" not in row:
                raise BadInput(f"tests table {tests_table}: every [[package]] needs name and tests")
            extra[row["name"].lower()] = row
    for p in pkgs:
        for key in ("name", "version", "files", "modules"):
            if key not in p:
                raise BadInput(f"corpus {corpus}: entry {p.get('name', '?')!r} lacks {key!r}")
        if "tests" not in p and p["name"].lower() in extra:
            row = extra[p["name"].lower()]
            for key in ("tests", "test_deps", "test_apt", "tests_note"):
                if key in row:
                    p[key] = row[key]
        p.setdefault("test_deps", [])
        p.setdefault("test_apt", [])
        p.setdefault("apt", [])
        p.setdefault("build_env", {})
        p.setdefault("hidden", False)
    return pkgs


def local_indexes() -> list[str]:
    """The file:// indexes pip is configured with: the only places test dependencies come from."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    urls: list[str] = []
    for m in re.finditer(r"^[\w:.-]*\.(?:extra-)?index-url='([^']*)'", out, re.M):
        urls += [u for u in m.group(1).split() if u.startswith("file:") and u not in urls]
    return urls


# --------------------------------------------------------------------------
# builds
# --------------------------------------------------------------------------

class Workbench:
    """The shared harness's sdist, patch and build steps over our own cache."""

    def __init__(self, rw: ModuleType, cache: Path, args: argparse.Namespace):
        self.rw, self.cache, self.args = rw, cache, args

    def sdist(self, pkg: dict, env) -> Path:
        mine = self.cache / "sdist" / f"{pkg['name']}-{pkg['version']}"
        theirs = Path(self.rw.DEFAULT_CACHE) / "sdist" / mine.name
        if not mine.exists() and theirs.is_dir():  # reuse the harness's download; the sha256 decides
            shutil.copytree(theirs, mine)
        archive = self.rw.fetch_sdist(pkg, env, self.cache, self.args.timeout_download)
        want = pkg.get("sdist_sha256")
        if want and hashlib.sha256(archive.read_bytes()).hexdigest() != want:
            self.rw.rmtree(mine)
            raise RuntimeError(f"sdist sha256 mismatch for {archive.name}")
        return archive

    def patch(self, pkg: dict, archive: Path, work: Path) -> tuple[bytes, str]:
        """porter's patch for the corpus files, or b"" and why not."""
        root = self.rw.unpack(archive, work / "porter")
        patch = work / "porter.patch"
        cmd = self.args.cmd.format(files=" ".join(shlex.quote(f) for f in pkg["files"]),
                                   patch=shlex.quote(str(patch)), root=shlex.quote(str(root)))
        rc, out = self.rw.run_cmd(cmd, cwd=root, shell=True, timeout=self.args.timeout_port,
                                  log_path=work / "porter.log")
        if not patch.exists() or patch.stat().st_size == 0:
            return b"", f"porter rc={rc}: {self.rw.tail(out, 1)}"
        return patch.read_bytes(), ""

    def build(self, pkg: dict, env, archive: Path, patch: bytes, work: Path) -> tuple[str, str]:
        """(site directory, "") or ("", why not)."""
        src = self.rw.unpack(archive, work / ("patched" if patch else "pristine"))
        if patch:
            (work / "apply.patch").write_bytes(patch)
            ok, how = self.rw.apply_patch(work / "apply.patch", src, work, self.args.timeout_apply)
            if not ok:
                return "", f"patch does not apply: {how}"
        key = hashlib.sha256(patch).hexdigest()[:16] if patch else "baseline"
        st = self.rw.build(pkg, env, src, key, self.cache, self.args.timeout_build, self.args.rebuild, work)
        self.rw.rmtree(work / ("patched" if patch else "pristine"))
        if st["status"] != "ok":
            return "", f"build FAIL: {st['detail']}"
        return st["site"], ""


class TestVenvs:
    """A venv per (Python, test_deps), filled from the local pip index only."""

    def __init__(self, rw: ModuleType, cache: Path, indexes: list[str], timeout: int, retry_failed: bool):
        self.rw, self.cache, self.indexes, self.timeout = rw, cache, indexes, timeout
        self.retry_failed = retry_failed

    def get(self, base_python: str, tag: str, deps: list[str]) -> tuple[str, str]:
        """(bin directory, "") or ("", why not)."""
        key = hashlib.sha256(json.dumps([base_python, sorted(deps), self.indexes]).encode()).hexdigest()[:12]
        d = self.cache / "testvenv" / f"{tag}-{key}"
        ready, failed = d / ".ready", d.with_name(d.name + ".failed")
        if ready.exists():
            return str(d / "bin"), ""
        if failed.exists() and not self.retry_failed:
            return "", failed.read_text()
        self.rw.rmtree(d)
        d.parent.mkdir(parents=True, exist_ok=True)
        rc, out = self.rw.run_cmd([base_python, "-m", "venv", str(d)], timeout=self.timeout)
        if rc == 0 and deps:
            where = ["--index-url", self.indexes[0]] + [a for u in self.indexes[1:] for a in ("--extra-index-url", u)]
            rc, out = self.rw.run_cmd([str(d / "bin" / "python"), "-m", "pip", "install", "-q",
                                       "--disable-pip-version-check", *where, *deps],
                                      timeout=self.timeout, log_path=d.with_name(d.name + ".log"))
        if rc != 0:
            why = self.rw.short(" ".join(s for s in out.splitlines() if "ERROR" in s) or self.rw.tail(out, 1), 160)
            failed.write_text(why)
            self.rw.rmtree(d)
            return "", why
        ready.write_text(json.dumps(deps))
        return str(d / "bin"), ""


# --------------------------------------------------------------------------
# one test run
# --------------------------------------------------------------------------

def run_tests(pkg: dict, rw: ModuleType, archive: Path, site: str, venv_bin: str, work: Path, timeout: int) -> Run:
    root = rw.unpack(archive, work / "tests-root")
    record = work / "record.jsonl"
    record.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    env.update({
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        "VIRTUAL_ENV": str(Path(venv_bin).parent),
        "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), site]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTEST_PLUGINS": "porter_pkgtests_plugin",
        "PORTER_PKGTESTS_RECORD": str(record),
        "PORTER_PKGTESTS_MODULES": ",".join(pkg["modules"]),
    })
    t0 = time.time()
    log = work / "tests.log"
    rc, out = rw.run_cmd(pkg["tests"], cwd=root, env=env, shell=True, timeout=timeout, log_path=log)
    run = Run(rc=rc, log=str(log), seconds=round(time.time() - t0, 1))
    run.outcomes, run.loaded = read_record(record)
    rw.rmtree(work / "tests-root")
    run.status = provenance(run, site)
    if rc == "timeout":
        run.status, run.detail = "timeout", f"timed out after {timeout}s"
    elif isinstance(rc, int) and (rc < 0 or rc - 128 in (4, 6, 7, 8, 11) or "Fatal Python error" in out):
        # the shell reports a child killed by signal N as 128 + N (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV)
        run.status = "crashed"
        run.detail = f"crashed (signal {-rc if rc < 0 else rc - 128}) after {len(run.outcomes)} tests: " + \
            next((line.strip() for line in out.splitlines()
                  if "Fatal Python error" in line or "Segmentation fault" in line), rw.tail(out, 1))
    elif not run.outcomes:
        run.detail = f"no per-test outcomes (rc={rc}): {rw.tail(out, 1)}"
    return run


def read_record(record: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each test's outcome (the worst, when reported twice) and the files each extension came from."""
    outcomes: dict[str, str] = {}
    loaded: dict[str, list[str]] = {}
    for line in record.read_text(errors="replace").splitlines() if record.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("kind") == "test":
            old, new = outcomes.get(entry["id"]), entry["outcome"]
            outcomes[entry["id"]] = new if old is None or WORST.index(new) > WORST.index(old) else old
        elif entry.get("kind") == "modules":
            for mod, path in entry["loaded"].items():
                if path not in loaded.setdefault(mod, []):
                    loaded[mod].append(path)
    return outcomes, loaded


def provenance(run: Run, site: str) -> str:
    """ok when every extension module the tests loaded came from this build, and at least one was loaded."""
    top = os.path.realpath(site) + os.sep
    if not run.loaded:
        return "ext not loaded"
    for paths in run.loaded.values():
        for p in paths:
            if p is None or not os.path.realpath(p).startswith(top):
                return "ext from elsewhere"
    return "ok"


# --------------------------------------------------------------------------
# per package
# --------------------------------------------------------------------------

def compare(original: Run, ported: Run) -> tuple[dict[str, str], list[str]]:
    regressions = {t: ported.outcomes.get(t, "missing") for t, o in original.outcomes.items()
                   if COLUMN[o] == "pass" and COLUMN.get(ported.outcomes.get(t, ""), "") != "pass"}
    fixed = [t for t, o in ported.outcomes.items()
             if COLUMN[o] == "pass" and COLUMN.get(original.outcomes.get(t, ""), "pass") != "pass"]
    return dict(sorted(regressions.items())), sorted(fixed)


def evaluate(pkg: dict, ver: str, env, bench: Workbench, venvs: TestVenvs, args) -> Row:
    rw = bench.rw
    work = bench.cache / "work" / pkg["name"] / env.tag
    rw.rmtree(work)
    work.mkdir(parents=True)
    blank = Run()
    row = Row(pkg["name"], ver, "", blank, Run())

    def stop(status: str, note: str = "") -> Row:
        row.status = status
        if note:
            row.notes.append(note)
        return row

    if not pkg.get("tests"):
        return stop("no tests")
    if not env.ok:
        return stop("no python", env.error)
    missing_apt = [a for a in pkg["test_apt"]
                   if subprocess.run(["dpkg", "-s", a], capture_output=True).returncode != 0]
    if missing_apt:
        return stop("no deps", "Debian packages missing: " + " ".join(missing_apt))
    venv_bin, why = venvs.get(env.base, env.tag, list(pkg["test_deps"]))
    if not venv_bin:
        return stop("no deps", f"test_deps {pkg['test_deps']} not in the local index: {why}")
    try:
        archive = bench.sdist(pkg, env)
    except Exception as e:  # noqa: BLE001  one package never stops the rest
        return stop("no sdist", rw.short(e, 160))
    patch = b""
    if not args.original_only:
        patch, why = bench.patch(pkg, archive, work)
        if not patch:
            return stop("no patch", why)
    for label, p in (("original", b""), ("ported", patch)):
        if label == "ported" and args.original_only:
            break
        rw.log(f"{pkg['name']}: {label} {ver}: build")
        site, why = bench.build(pkg, env, archive, p, work / label)
        if not site:
            return stop(f"{label} build FAIL", why)
        rw.log(f"{pkg['name']}: {label} {ver}: tests")
        run = run_tests(pkg, rw, archive, site, venv_bin, work / label, args.timeout_test)
        setattr(row, label, run)
        if run.detail:
            row.notes.append(f"{label}: {run.detail}")
        if run.status.startswith("ext "):
            row.notes.append(f"{label}: {run.status} {json.dumps(run.loaded)}")
    if args.original_only:
        row.status = row.original.status if row.original.status != "ok" else "original only"
        return row
    row.regressions, row.fixed = compare(row.original, row.ported)
    if row.original.status != "ok" or (not args.original_only and row.ported.status != "ok"):
        row.status = row.ported.status if row.original.status == "ok" else row.original.status
        if row.regressions:
            row.status = "REGRESSION, " + row.status
    elif not row.original.outcomes:
        row.status = "no results"
    elif not row.original.counts()["pass"]:
        row.status = "nothing passes on the original"
    else:
        row.status = "REGRESSION" if row.regressions else "ok"
    return row


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def cell(run: Run) -> str:
    if not run.outcomes and not run.status:
        return "-"
    c = run.counts()
    return f"{c['pass']}/{c['fail']}/{c['skip']}"


def table(rows: list[Row], names_per_row: int) -> str:
    head = ["package", "python", "original p/f/s", "ported p/f/s", "regressions", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        names = [f"`{t}` ({o})" for t, o in r.regressions.items()]
        shown = ", ".join(names[:names_per_row]) + (f", +{len(names) - names_per_row} more"
                                                    if len(names) > names_per_row else "")
        reg = f"{len(names)}: {shown}" if names else "0" if r.status in ("ok", "REGRESSION") else "-"
        status = r.status + (f" ({'; '.join(r.notes)})" if r.notes and r.status != "ok" else "")
        lines.append("| " + " | ".join([r.package, r.python, cell(r.original), cell(r.ported), reg,
                                        status.replace("|", "/")]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="corpus file (default %(default)s)")
    ap.add_argument("--tests-table", default=str(DEFAULT_TESTS_TABLE),
                    help="tests for entries the corpus gives none (default %(default)s)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only this package (repeatable, comma lists allowed)")
    ap.add_argument("--pythons", default="3.12,3.13", help="comma list (default %(default)s)")
    ap.add_argument("--json", metavar="PATH", help="also write every row, with every test's outcome, as JSON")
    ap.add_argument("--porter", default=shutil.which("porter", path=str(Path(sys.executable).parent))
                    or shutil.which("porter"), help="the porter executable (default: beside this Python, or PATH)")
    ap.add_argument("--cmd", default=None,
                    help="porter command template run in the sdist root ({files}, {patch}, {root}); "
                         "default: '<porter> port {files} --output {patch}'")
    ap.add_argument("--harness", default=str(DEFAULT_HARNESS), help="the shared realworld.py (default %(default)s)")
    ap.add_argument("--cache", default=DEFAULT_CACHE, help="default %(default)s or $PORTER_PKGTESTS_CACHE")
    ap.add_argument("--index", action="append", default=[], metavar="URL",
                    help="pip index for test_deps (repeatable; default: the file:// indexes of pip's config)")
    ap.add_argument("--original-only", action="store_true", help="only the original build (check a tests command)")
    ap.add_argument("--rebuild", action="store_true", help="ignore cached builds and failed test venvs")
    ap.add_argument("--names", type=int, default=5, help="regression names shown per row (default %(default)s)")
    ap.add_argument("--timeout-download", type=int, default=600)
    ap.add_argument("--timeout-port", type=int, default=600)
    ap.add_argument("--timeout-apply", type=int, default=60)
    ap.add_argument("--timeout-build", type=int, default=900)
    ap.add_argument("--timeout-test", type=int, default=1200)
    ap.add_argument("--timeout-venv", type=int, default=900)
    try:
        args = ap.parse_args(argv)
        return run(args)
    except BadInput as e:
        print(f"package_tests.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("package_tests.py: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    rw = load_harness(Path(args.harness))
    if args.tests_table and Path(args.tests_table) != DEFAULT_TESTS_TABLE and not Path(args.tests_table).is_file():
        raise BadInput(f"tests table not found: {args.tests_table}")
    if args.json and not os.access(Path(args.json).resolve().parent, os.W_OK):
        raise BadInput(f"--json: cannot write into {Path(args.json).resolve().parent}")
    pkgs = load_packages(Path(args.corpus), Path(args.tests_table) if args.tests_table else None)
    if args.only:
        wanted = {w.strip().lower() for o in args.only for w in o.split(",") if w.strip()}
        unknown = wanted - {p["name"].lower() for p in pkgs}
        if unknown:
            raise BadInput(f"--only: not in {args.corpus}: {', '.join(sorted(unknown))}")
        pkgs = [p for p in pkgs if p["name"].lower() in wanted]
    vers = [v.strip() for v in args.pythons.split(",") if v.strip()]
    if not vers or any(not re.fullmatch(r"3\.\d+", v) for v in vers):
        raise BadInput(f"--pythons: expected a comma list like 3.12,3.13, got {args.pythons!r}")
    if args.cmd is None:
        if not args.porter or not os.access(args.porter, os.X_OK):
            raise BadInput(f"no porter executable {'at ' + args.porter if args.porter else 'found'} "
                           "(pass --porter or --cmd)")
        args.cmd = shlex.quote(args.porter) + " port {files} --output {patch}"
    indexes = args.index or local_indexes()
    if not indexes:
        raise BadInput("no local pip index configured for test dependencies (pass --index URL)")

    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    envs = {}
    for v in vers:
        base = rw.find_python(v)
        env = rw.PyEnv(v, base or "", cache)
        if not base:
            env.error = f"no CPython {v} found"
        else:
            env.ensure(args.timeout_venv)
        envs[v] = env
    bench = Workbench(rw, cache, args)
    venvs = TestVenvs(rw, cache, indexes, args.timeout_venv, retry_failed=args.rebuild)

    rows = []
    for p in pkgs:
        if not p.get("tests"):
            continue
        for v, env in envs.items():
            rw.log(f"== {p['name']} {p['version']} on {v}")
            try:
                rows.append(evaluate(p, v, env, bench, venvs, args))
            except Exception as e:  # noqa: BLE001  one package never stops the rest
                rows.append(Row(p["name"], v, "harness error", Run(), Run(), notes=[f"{type(e).__name__}: {e}"]))
            rw.log("row: " + table(rows[-1:], args.names).splitlines()[-1])
            if args.json:  # after every row: a run stopped half-way keeps what it measured
                Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    skipped = [p["name"] for p in pkgs if not p.get("tests")]
    print(table(rows, args.names))
    if skipped:
        print(f"\nno tests command: {', '.join(skipped)}")
    n_reg = sum(len(r.regressions) for r in rows)
    print(f"\npackage_tests: {sum(r.status == 'ok' for r in rows)}/{len(rows)} rows ok, "
          f"{n_reg} regression(s) in {sum(bool(r.regressions) for r in rows)} row(s)")
    return 1 if n_reg else 0


if __name__ == "__main__":
    sys.exit(main())
