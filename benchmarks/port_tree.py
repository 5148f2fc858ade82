"""Time `porter port` over a whole tree: wall time, CPU time and peak memory, best of N.

    python benchmarks/port_tree.py PATH [--repeat 3] [--unsafe]

Each run is a fresh `python -m porter port --no-compile --keep-going PATH` child (the patch goes to a pipe
that is counted and dropped); peak memory is that of the child's whole process tree (see
_measure.py). Also prints how many modules ported, failed or had nothing to do, and the size
of the patch, so that a faster run that does less is visible.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from collections import Counter

from _measure import measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--unsafe", action="store_true")
    parser.add_argument("--port-args", default="--no-compile --keep-going",
                        help="(default: --no-compile --keep-going: porter's own work, not the compiler's)")
    args = parser.parse_args()
    argv = [sys.executable, "-m", "porter", "port", *args.port_args.split(), args.path] + (
        ["--unsafe"] if args.unsafe else [])
    runs = []
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        with tempfile.TemporaryFile() as out:
            r = measure(argv, stdout=out)
            out.seek(0)
            patch = out.read()
        if r["code"] not in (0, 1):
            print(r["stderr"], file=sys.stderr)
            return 1
        statuses = Counter(m.group(1) for m in re.finditer(r"^porter: [^:]+: (ported|nothing to do|FAILED)",
                                                           r["stderr"], re.MULTILINE))
        r.update(load=load, patch_bytes=len(patch), patch_sha=hashlib.sha256(patch).hexdigest()[:12],
                 statuses=dict(statuses))
        runs.append(r)
        print(f"run {i + 1}: {r['wall']:.2f}s  cpu {r['cpu']:.2f}s  peak {r['tree_peak_mib']:.0f} MiB "
              f"(own maxrss {r['maxrss_mib']:.0f})  load {load:.1f}", file=sys.stderr)
    best = min(runs, key=lambda r: r["wall"])
    print(f"{args.path}: porter port, best of {args.repeat}")
    print(f"wall {best['wall']:.2f}s  cpu {best['cpu']:.2f}s  peak {max(r['tree_peak_mib'] for r in runs):.0f} MiB "
          f"(own maxrss {best['maxrss_mib']:.0f})")
    print(f"modules {best['statuses']}; patch {best['patch_bytes']} bytes, sha256 {best['patch_sha']}"
          + ("" if len({r['patch_sha'] for r in runs}) == 1 else "  (PATCHES DIFFER BETWEEN RUNS)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
