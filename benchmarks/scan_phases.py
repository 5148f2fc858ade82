"""Where a scan's time goes: seconds per phase of `porter scan` in one process (`-j 1`).

    python benchmarks/scan_phases.py PATH... [--repeat 3] [--table c|all]

Runs the scan of PATH in a fresh child process per run, with timers around porter's phases,
and prints each phase's seconds (the best run's, and the range over all runs) and the share of
the scan. One process, so the seconds are CPU seconds of that process, not what two processes
cost (`compare_peer.py` measures that). Phases nest as indented: a parent's seconds include
its children's; "tree-sitter parse" and "query captures" are tree-sitter's C, the rest is
porter's Python (and the `re` module's C).

What it is for: the speed target (`compare_peer.py`, ratio >= 1.0) needs to know which part
grows and which shrinks; a change that moves work between phases shows here, not in the total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

# (label, depth, module, attribute): the function named is timed wherever the caller reaches
# it through that module's namespace (a `from x import f` binds the name in the caller's module).
PHASES = [
    ("read inputs", 0, "porter.cli", "_read_inputs"),
    ("scan", 0, "porter.cli", "_scan"),
    ("directives and includes", 1, "porter.analyze.schedule", "prepare"),
    ("directives of a file", 2, "porter.analyze.schedule", "preprocess"),
    ("parse a file", 1, "porter.analyze.schedule", "parse_source"),
    ("mask macros", 2, "porter.parse", "mask_macros"),
    ("blank number tables", 2, "porter.parse", "_blank_number_tables"),
    ("tree-sitter parse", 2, "porter.parse", "_parser_for"),
    ("groups to mask", 2, "porter.parse", "_groups_to_mask"),
    ("file facts", 1, "porter.analyze.schedule", "file_facts"),
    ("index a file", 1, "porter.analyze.schedule", "build_index"),
    ("query captures", 2, "porter.analyze.index", "captures"),
    ("link facts", 1, "porter.analyze.schedule", "link_facts"),
    ("init functions", 1, "porter.analyze.schedule", "find_init_functions"),
    ("analyse a module", 1, "porter.analyze.schedule", "analyze_root"),
    ("functions", 2, "porter.analyze.project", "collect_functions"),
    ("macro-defined functions", 2, "porter.analyze.project", "_macro_defined"),
    ("globals", 2, "porter.analyze.project", "collect_globals"),
    ("macro uses", 2, "porter.analyze.project", "_macro_uses"),
    ("tables", 2, "porter.analyze.project", "collect_tables"),
    ("static types", 2, "porter.analyze.project", "collect_static_types"),
    ("findings", 2, "porter.analyze.project", "collect_findings"),
    ("assemble", 1, "porter.analyze.schedule", "_assemble"),
]

CHILD = r"""
import importlib, json, sys, time
from pathlib import Path

phases = json.loads(sys.argv[1])
spent = {label: 0.0 for label, *_ in phases}
calls = {label: 0 for label, *_ in phases}


class _TimedParser:
    # tree-sitter's Parser is a C type: its `parse` is timed through the object handed out.
    def __init__(self, parser, label):
        self._parser, self._label = parser, label

    def parse(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._parser.parse(*args, **kwargs)
        finally:
            spent[self._label] += time.perf_counter() - start
            calls[self._label] += 1


def timed(label, function, hands_out_parser):
    if hands_out_parser:
        return lambda *a, **k: _TimedParser(function(*a, **k), label)

    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start
            calls[label] += 1
    return run


start = time.perf_counter()
modules = [importlib.import_module(module) for _, _, module, _ in phases]
import porter.pipeline, porter.report
imported = time.perf_counter() - start
for (label, _, _, name), mod in zip(phases, modules):
    setattr(mod, name, timed(label, getattr(mod, name), name == "_parser_for"))
from porter.cli import _read_inputs, _scan

start = time.perf_counter()
inputs = _read_inputs([Path(p) for p in sys.argv[3:]])
analysis = _scan(inputs, sys.argv[2], 1, port_facts=False)
print(json.dumps({"imports": imported, "total": time.perf_counter() - start, "spent": spent, "calls": calls,
                  "modules": len(analysis.modules), "files": len(analysis.sources)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--table", choices=("c", "all"), default="c",
                        help="the files read besides the modules': those the table lists (c, as `scan`), "
                             "or all (as `scan --json`)")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(PHASES), args.table, *args.paths],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
                  file=sys.stderr)
            return 1
        runs.append(json.loads(out.stdout))
    best = min(runs, key=lambda r: r["total"])
    print(f"{best['files']} files, {best['modules']} modules; best of {len(runs)}: "
          f"{best['total']:.2f} s (imports {best['imports']:.2f} s before it)")
    print(f"{'phase':34s} {'calls':>6s} {'s':>7s} {'range s':>13s} {'share':>6s}")
    for label, depth, _, _ in PHASES:
        seconds = [r["spent"][label] for r in runs]
        spread = f"{min(seconds):.2f}-{max(seconds):.2f}"
        print(f"{'  ' * depth + label:34s} {best['calls'][label]:6d} {best['spent'][label]:7.2f} {spread:>13s} "
              f"{best['spent'][label] / best['total']:6.1%}")
    totals = [r["total"] for r in runs]
    print(f"total: best {min(totals):.2f} s, median {statistics.median(totals):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
