"""What porter's port of `_decimal` costs: a telco-style workload on the original and the port, in-tree.

    python benchmarks/decimal_speed.py --tree /path/to/cpython [--calls 20000] [--runs 7]

The tree is the CPython checkout `cpython_intree.py` uses (clean, configured and built). The
script ports `Modules/_decimal/_decimal.c` with porter, applies the patch, rebuilds, keeps a copy
of the ported `_decimal` shared library, restores and rebuilds the tree, and keeps a copy of the
original one. Then it runs the workload with the tree's `./python`, loading one library or the
other, alternately (`--runs` fresh processes each, so that a busy machine slows both alike), and
takes the best CPU time of each. Prints both times and the ratio port / original.

The workload is written here (not taken from elsewhere): for each of `--calls` call records,
rate it (duration times a per-second rate, quantized to the cent with ROUND_HALF_EVEN), add
two taxes (quantized too), keep running totals, and format each line with str(); then format
the totals. It exercises Decimal construction from strings and ints, multiplication,
addition, quantize, comparisons, the thread's context and str().
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpython_intree import (  # noqa: E402
    TARGETS,
    Refused,
    check_tree,
    make,
    porter_port,
    restore,
    run,
    untracked_files,
)

WORKLOAD = r"""
import importlib.util, sys, time

spec = importlib.util.spec_from_file_location("_decimal", sys.argv[3])
D = importlib.util.module_from_spec(spec)
sys.modules["_decimal"] = D
spec.loader.exec_module(D)
calls, runs = int(sys.argv[1]), int(sys.argv[2])
D.setcontext(D.Context(prec=28, rounding=D.ROUND_HALF_EVEN))
cent = D.Decimal("0.01")
rates = (D.Decimal("0.0013"), D.Decimal("0.00894"))
basic_tax, distance_tax = D.Decimal("0.0675"), D.Decimal("0.0341")
# Deterministic call records: (duration in seconds, distance flag).
records = [((i * 7919) % 3600 + 1, (i * 31) % 3 == 0) for i in range(calls)]


def bill():
    total = total_basic = total_distance = D.Decimal(0)
    lines = []
    for seconds, distant in records:
        duration = D.Decimal(seconds)
        price = (duration * rates[distant]).quantize(cent, rounding=D.ROUND_HALF_EVEN)
        basic = (price * basic_tax).quantize(cent, rounding=D.ROUND_DOWN)
        total_basic += basic
        line = price + basic
        if distant:
            extra = (price * distance_tax).quantize(cent, rounding=D.ROUND_DOWN)
            total_distance += extra
            line += extra
        if line > price:
            total += line
        lines.append(str(line))
    return lines, f"{total} {total_basic} {total_distance}"


best = None
for _ in range(runs):
    t = time.process_time()
    lines, totals = bill()
    elapsed = time.process_time() - t
    best = elapsed if best is None else min(best, elapsed)
print(f"{best:.6f} {len(lines)} {totals}")
"""


def measure(python: Path, tree: Path, libraries: dict[str, Path], calls: int, runs: int) -> dict[str, float]:
    """The best CPU time of each library over `runs` fresh processes each (each process takes
    the best of 3 passes), run alternately; every run must compute the same totals."""
    best: dict[str, float] = {}
    results = set()
    for _ in range(runs):
        for name, library in libraries.items():
            r = run([str(python), "-c", WORKLOAD, str(calls), "3", str(library)], tree, timeout=1800)
            if r.returncode != 0:
                raise RuntimeError(f"the workload failed with the {name} _decimal: "
                                   f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
            seconds, _, result = r.stdout.strip().partition(" ")
            best[name] = min(best.get(name, float("inf")), float(seconds))
            results.add(result)
    if len(results) != 1:
        raise RuntimeError(f"the original and the port computed different results: {sorted(results)}")
    return best


def built_library(tree: Path, keep: Path) -> Path:
    """A copy of the `_decimal` shared library the tree's last build made."""
    builddir = tree / (tree / "pybuilddir.txt").read_text().strip()
    found = sorted(builddir.glob("_decimal.*.so"))
    if not found:
        raise RuntimeError(f"no _decimal library in {builddir}")
    keep.write_bytes(found[0].read_bytes())
    return keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="a built CPython git checkout (never committed)")
    parser.add_argument("--calls", type=int, default=20000, help="call records per pass")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per measurement")
    parser.add_argument("--porter", default=f"{sys.executable} -m porter")
    parser.add_argument("--keep-logs", type=Path)
    args = parser.parse_args()
    tree = args.tree.resolve()
    try:
        check_tree(tree)
        if not (tree / "python").exists():
            raise Refused(f"--tree {tree}: not built (no ./python); build it first")
    except Refused as e:
        print(f"decimal_speed: {e}", file=sys.stderr)
        return 2
    logs = args.keep_logs.resolve() if args.keep_logs else Path(tempfile.mkdtemp(prefix="decimal-speed-"))
    logs.mkdir(parents=True, exist_ok=True)
    target = next(t for t in TARGETS if t.name == "_decimal")
    python = tree / "python"
    created: set[str] = set()
    try:
        status, patch, _ = porter_port(args.porter.split(), tree, target, logs)
        if patch is None:
            print(f"decimal_speed: porter made no patch ({status})", file=sys.stderr)
            return 1
        untracked = untracked_files(tree)
        applied = run(["git", "apply", "--whitespace=nowarn", str(patch)], tree)
        created = untracked_files(tree) - untracked
        if applied.returncode != 0:
            print(f"decimal_speed: the patch does not apply: {applied.stderr.strip()[:200]}", file=sys.stderr)
            return 1
        if not make(tree, logs / "make-port.log")[0]:
            print(f"decimal_speed: the port does not build (see {logs / 'make-port.log'})", file=sys.stderr)
            return 1
        port = built_library(tree, logs / "port.so")
    finally:
        restore(tree, created)
        make(tree, logs / "make-restored.log")
    original = built_library(tree, logs / "original.so")
    best = measure(python, tree, {"original": original, "port": port}, args.calls, args.runs)
    version = re.search(r'PY_VERSION\s+"([^"]+)"', (tree / "Include" / "patchlevel.h").read_text())
    print(f"CPython {version.group(1) if version else '?'} in-tree build, {args.calls} calls, "
          f"best CPU time of {args.runs} processes x 3 passes each, run alternately")
    print(f"original {best['original'] * 1e3:.1f} ms, port {best['port'] * 1e3:.1f} ms, "
          f"port/original {best['port'] / best['original']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
