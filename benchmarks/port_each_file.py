"""`porter port` on every C file of a tree, one file at a time, as a user trying porter would.

    python benchmarks/port_each_file.py PATH [--jobs 2] [--porter 'CMD'] [--list KIND]

Each `.c` file under PATH is ported alone (`porter port --no-compile FILE`, patch to a pipe) in
its own process. A file ported alone often lacks the other files of its module: porter must then
say so (exit 1 with a reason), never crash. Counts:

- traceback: a Python traceback on stderr, or exit 3 (porter's internal error);
- silent empty patch: exit 0 and no patch for a file that defines `PyInit_`, and no line of
  porter's naming a module and what became of it (`porter: _abc: already isolated` is an
  answer; nothing at all, or "no extension module found", is the defect);
- and per exit code, how many files; per file kind (defines `PyInit_` or not).

Exit status 1 when any traceback or silent empty patch was found.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

INIT = re.compile(rb"\bPyInit_\w*\s*\(")
MODULE_STATUS = re.compile(r"^porter: [\w.]+: ", re.MULTILINE)  # `porter: <module>: <status>`


def port_one(command: list[str], path: Path) -> dict:
    done = subprocess.run([*command, str(path)], capture_output=True, timeout=600)
    stderr = done.stderr.decode("utf-8", "replace")
    has_init = bool(INIT.search(path.read_bytes()))
    return {
        "file": str(path),
        "code": done.returncode,
        "init": has_init,
        "patch": bool(done.stdout.strip()),
        "traceback": "Traceback (most recent call last)" in stderr or done.returncode == 3,
        "silent_empty": has_init and done.returncode == 0 and not done.stdout.strip()
        and not MODULE_STATUS.search(stderr),
        "last_line": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--porter", default=f"{shlex.quote(sys.executable)} -m porter port --no-compile",
                        help="the command, to which each file is appended")
    parser.add_argument("--list", choices=("traceback", "silent_empty", "exit1", "all"),
                        help="also list the files of that kind with porter's last stderr line")
    args = parser.parse_args()
    if not args.path.is_dir():
        print(f"port_each_file: {args.path} is not a folder", file=sys.stderr)
        return 2
    files = sorted(args.path.rglob("*.c"))
    command = shlex.split(args.porter)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda p: port_one(command, p), files))
    by_code = Counter((r["init"], r["code"]) for r in results)
    tracebacks = [r for r in results if r["traceback"]]
    silent = [r for r in results if r["silent_empty"]]
    print(f"{args.path}: {len(files)} .c files, {sum(r['init'] for r in results)} define PyInit_")
    print(f"{'files':>24} {'exit 0':>7} {'exit 1':>7} {'exit 2':>7} {'other':>7}")
    for init in (True, False):
        label = "with PyInit_" if init else "without PyInit_"
        row = [by_code[(init, c)] for c in (0, 1, 2)]
        other = sum(n for (i, c), n in by_code.items() if i == init and c not in (0, 1, 2))
        print(f"{label:>24} {row[0]:7} {row[1]:7} {row[2]:7} {other:7}")
    print(f"patches written: {sum(r['patch'] for r in results)}; tracebacks: {len(tracebacks)}; "
          f"silent empty patches (PyInit_, exit 0, no patch, no module named): {len(silent)}")
    wanted = {"traceback": tracebacks, "silent_empty": silent,
              "exit1": [r for r in results if r["code"] == 1], "all": results}.get(args.list or "", [])
    for r in wanted:
        print(f"  {r['code']} {r['file']}: {r['last_line']}")
    return 1 if tracebacks or silent else 0


if __name__ == "__main__":
    sys.exit(main())
