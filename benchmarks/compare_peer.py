"""`porter scan` against a peer scanner on the same tree, in the same run: wall time and peak memory.

    python benchmarks/compare_peer.py PATH --peer 'CMD ... {path}' [--repeat 3] [--porter 'CMD {path}']

Runs are interleaved (porter, peer, porter, peer, ...) so that both see the same load; each run
is a fresh child process whose output goes to /dev/null. Time comes from runs whose memory is not
sampled (sampling /proc every 10 ms slows a tree of worker processes more than one process);
one more run of each measures memory: the largest sum of the resident sets of the child and its
descendants (sampled every 10 ms from /proc), so work spread over processes is counted whole;
the child's own ru_maxrss is printed too. The wall-clock ratio is peer / porter (above 1.0:
porter is faster), best of N each.

The peer is whatever command you give: nothing of it is part of porter. For cext-review-toolkit:

    --peer '/work/cext-review-toolkit/.venv/bin/python
            /work/cext-review-toolkit/plugins/cext-review-toolkit/scripts/scan_module_state.py {path}'
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from _measure import measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--peer", required=True, help="the peer's command; {path} stands for PATH")
    parser.add_argument("--porter", default=f"{shlex.quote(sys.executable)} -m porter scan --json {{path}}",
                        help="porter's command (default: scan --json with this interpreter)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    commands = {name: [part.replace("{path}", args.path) for part in shlex.split(cmd)]
                for name, cmd in (("porter", args.porter), ("peer", args.peer))}
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    loads = []
    memory: dict[str, dict] = {}
    for i in range(args.repeat + 1):
        sampled = i == args.repeat  # the last round measures memory only
        for name, argv in commands.items():
            loads.append(os.getloadavg()[0])
            r = measure(argv, sample=sampled)
            if sampled:
                memory[name] = r
            else:
                runs[name].append(r)
            print(f"run {i + 1} {name:6} {r['wall']:7.2f}s  cpu {r['cpu']:7.2f}s  "
                  + (f"peak RSS {r['tree_peak_mib']:6.0f} MiB, PSS {r['tree_pss_mib']:6.0f} MiB "
                     f"(own maxrss {r['maxrss_mib']:.0f}; memory sampled, time not counted)" if sampled else
                     f"(own maxrss {r['maxrss_mib']:.0f})") + f"  exit {r['code']}", file=sys.stderr)
            if name == "porter" and r["code"] not in (0, 1):
                print(r["stderr"], file=sys.stderr)
                return 1
    best = {name: min(rs, key=lambda r: r["wall"]) for name, rs in runs.items()}
    print(f"{args.path}: best of {args.repeat}, load average {min(loads):.1f}-{max(loads):.1f} during the runs")
    print(f"{'':8}{'wall s':>9}{'cpu s':>9}{'RSS MiB':>10}{'PSS MiB':>10}{'maxrss MiB':>12}")
    for name, r in best.items():
        rss, pss = memory[name]["tree_peak_mib"], memory[name]["tree_pss_mib"]
        print(f"{name:8}{r['wall']:9.2f}{r['cpu']:9.2f}{rss:10.0f}{pss:10.0f}{r['maxrss_mib']:12.0f}")
    print("RSS and PSS: the largest sum over porter's processes (RSS counts pages a worker shares with "
          "its parent twice, PSS once); cpu: the process and the children it waited for")
    print(f"wall-clock ratio peer/porter: {best['peer']['wall'] / best['porter']['wall']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
