"""What a port costs on hot paths: a fixture's tp_iternext and its iterator creation, before and after.

    python benchmarks/hot_path.py [--fixture type-iter-hot] [--n 1000000] [--repeat 7]

Builds the fixture as written and as ported with every CPython >= 3.12 found, then times
iterating N elements (the iterator's tp_iternext runs once per element and, after the port,
looks its module state up with PyType_GetModuleByDef on each call), and creating iterators
(after the port a GC-tracked heap type allocated by PyType_GenericAlloc). Prints ns.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from porter.diff import unified_diff  # noqa: E402,F401  (keeps the import path honest)
from porter.inputs import collect_inputs  # noqa: E402
from porter.pipeline import port_files  # noqa: E402
from porter.verify import build_extension, find_interpreters, load_fixture  # noqa: E402

TIMER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import counterit
n, repeat = int(sys.argv[2]), int(sys.argv[3])
iterate, create = [], []
for _ in range(repeat):
    it = iter(counterit.Counter(0, n))
    t = time.perf_counter()
    for _ in it:
        pass
    iterate.append((time.perf_counter() - t) / n * 1e9)
    c = counterit.Counter(0, 1)
    t = time.perf_counter()
    for _ in range(n // 10):
        iter(c)
    create.append((time.perf_counter() - t) / (n // 10) * 1e9)
print(" ".join(f"{x:.3f}" for x in iterate))
print(" ".join(f"{x:.3f}" for x in create))
"""

# What each timing line measures: a state lookup per element, and an allocation per iterator
# (after the port: PyType_GenericAlloc of a GC type instead of PyObject_New).
MEASURES = ("tp_iternext, ns per element", "iter(counter): tp_iter allocating an iterator, ns per call")


def ported_sources(fixture, dest: Path) -> list[Path]:
    inputs = collect_inputs([str(fixture.path)], cwd=fixture.path)
    result = port_files([(f.path, f.data) for f in inputs.files])
    dest.mkdir(parents=True)
    for f in inputs.files:
        (dest / Path(f.path).name).write_bytes(result.new_text.get(f.path, f.data))
    return [dest / s.name for s in fixture.sources]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", default="type-iter-hot")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    fixture = load_fixture(ROOT / "fixtures" / args.fixture)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = {"original": list(fixture.sources), "ported": ported_sources(fixture, tmp / "src")}
        print(f"{args.fixture}: best and median of {args.repeat}, N = {args.n}")
        rows: dict[str, list] = {m: [] for m in MEASURES}
        for interp in find_interpreters():
            timings = {}
            for name, sources in variants.items():
                out = tmp / f"{name}-{interp.version}"
                built = build_extension(sources, fixture.module, interp, out)
                if not built.ok:
                    print(built.log, file=sys.stderr)
                    return 1
                run = subprocess.run([str(interp.executable), "-c", TIMER, str(out), str(args.n),
                                      str(args.repeat)], capture_output=True, text=True, check=True)
                timings[name] = [[float(x) for x in line.split()] for line in run.stdout.splitlines()]
            for i, measure in enumerate(MEASURES):
                o, p = timings["original"][i], timings["ported"][i]
                rows[measure].append(
                    f"  {interp.version}: original {min(o):6.2f} (median {statistics.median(o):6.2f})   "
                    f"ported {min(p):6.2f} (median {statistics.median(p):6.2f})   "
                    f"{(min(p) / min(o) - 1) * 100:+.1f}% best")
        for measure, lines in rows.items():
            print(measure)
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
