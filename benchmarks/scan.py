"""Time `porter scan` over a directory: wall time, peak memory, and what it found.

    python benchmarks/scan.py PATH [--repeat N] [--json]

Peak memory is the process's maximum resident set size (tree-sitter's C allocations
included), measured in a fresh child process per run so runs do not share caches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter

CHILD = r"""
import json, resource, sys, time
from porter.inputs import collect_inputs
from porter.pipeline import scan
start = time.perf_counter()
inputs = collect_inputs(sys.argv[1:])
read = time.perf_counter()
analysis = scan([(f.path, f.data) for f in inputs.files], inputs.problems)
done = time.perf_counter()
kinds = {}
for m in analysis.modules:
    for g in m.globals:
        kinds[g.kind.value] = kinds.get(g.kind.value, 0) + 1
print(json.dumps({
    "files": len(inputs.files),
    "lines": sum(f.data.count(b"\n") for f in inputs.files),
    "read_seconds": read - start,
    "scan_seconds": done - read,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "init_functions": len(analysis.modules),
    "single_phase": sum(m.init_style.value == "single-phase" for m in analysis.modules),
    "multi_phase": sum(m.init_style.value == "multi-phase" for m in analysis.modules),
    "unknown": sum(m.init_style.value == "unknown" for m in analysis.modules),
    "static_types": sum(len(m.static_types) for m in analysis.modules),
    "globals": kinds,
    "error_spans": sum(len(f.error_spans) for f in analysis.files),
    "files_with_errors": sum(1 for f in analysis.files if f.error_spans),
    "masked_conditionals": sum(f.masked_conditionals for f in analysis.files),
    "problems": [p.reason for p in analysis.problems],
}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, *args.paths], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        result = json.loads(out.stdout)
        result["wall_seconds"] = time.perf_counter() - start
        runs.append(result)
    best = min(runs, key=lambda r: r["wall_seconds"])
    if args.json:
        print(json.dumps({"runs": runs, "best": best}, indent=2))
        return 0
    walls = sorted(r["wall_seconds"] for r in runs)
    print(f"files {best['files']} ({best['lines']} lines)")
    print(f"wall  best {walls[0]:.2f}s  median {walls[len(walls) // 2]:.2f}s over {len(runs)} runs "
          f"(read {best['read_seconds']:.2f}s, scan {best['scan_seconds']:.2f}s)")
    print(f"peak  {max(r['peak_rss_mib'] for r in runs):.0f} MiB RSS")
    print(f"found {best['init_functions']} PyInit ({best['single_phase']} single-phase, "
          f"{best['multi_phase']} multi-phase, {best['unknown']} unknown), "
          f"{best['static_types']} static types")
    print("globals " + ", ".join(f"{k} {v}" for k, v in Counter(best["globals"]).most_common()))
    print(f"unparsed {best['error_spans']} ERROR spans in {best['files_with_errors']} files; "
          f"{best['masked_conditionals']} #if groups masked; {len(best['problems'])} problems")
    for p in best["problems"]:
        print(f"  problem: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
