"""Does porter's own word agree with the real-world harness? A table per package.

    python benchmarks/agreement.py [RESULTS_JSON]

Reads the harness's results.json (../shared/realworld/realworld.py writes it; default: the
last port run in its cache) and porter's own status lines from each package's porter.log,
and says for every package whether they agree:

- porter `compiles` (or `isolated`) <=> the patch applied, built on every Python and passed the
  isolated-subinterpreter oracle;
- porter `partial` => the patch built and ran in the main interpreter, and isolated
  subinterpreters still refuse it (porter never claimed they would not);
- porter `failed` => porter wrote no patch for that module;
- porter `not compiled` claims nothing (it says why it could not compile) and agrees with anything.

A disagreement is porter claiming more than was true (a `compiles` patch that does not build
or is refused), or less (a `failed` module whose patch would have been fine).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

_STATUS = re.compile(r"^porter: (?P<module>[\w.]+): (?P<status>isolated|compiles|partial|not compiled|failed|"
                     r"already isolated|not isolated)(?::|$)", re.MULTILINE)


def porter_statuses(log: Path) -> list[str]:
    try:
        return [m["status"] for m in _STATUS.finditer(log.read_text(errors="replace"))]
    except OSError:
        return []


def verdict(statuses: list[str], result: dict) -> tuple[str, bool]:
    """(porter's word for the package, whether the harness agrees)."""
    builds = all(v == "ok" for v in result.get("builds", {}).values()) and bool(result.get("builds"))
    main = all(v == "ok" for v in result.get("main", {}).values()) and bool(result.get("main"))
    if not statuses:
        return "-", False
    word = "failed" if "failed" in statuses else "partial" if "partial" in statuses else \
        "not compiled" if "not compiled" in statuses else statuses[0]
    if word in ("compiles", "isolated"):
        return word, bool(result.get("isolated_ok"))
    if word == "partial":
        return word, builds and main and not result.get("isolated_ok")
    if word == "failed":
        return word, result.get("patch") in ("none", "no", "empty") or not result.get("patch")
    # "not compiled": porter said it did not check; it claimed nothing the harness could refute.
    return word, True


def main(argv: list[str]) -> int:
    default = Path(os.environ.get("PORTER_EVAL_CACHE", Path(tempfile.gettempdir()) / "porter-realworld-cache"))
    path = Path(argv[0]) if argv else default / "work" / "port" / "results.json"
    results = json.loads(path.read_text())
    rows = [("package", "porter says", "patch", "builds", "main", "isolated", "agrees")]
    agree = 0
    for r in results:
        word, ok = verdict(porter_statuses(Path(r["logs"]) / "porter.log"), r)
        agree += ok
        rows.append((r["package"], word, r.get("patch", "-"),
                     "ok" if r.get("builds") and all(v == "ok" for v in r["builds"].values()) else "FAIL"
                     if r.get("builds") else "-",
                     "ok" if r.get("main") and all(v == "ok" for v in r["main"].values()) else "FAIL"
                     if r.get("main") else "-",
                     "ok" if r.get("isolated_ok") else "FAIL", "yes" if ok else "NO"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"\nagreement: {agree}/{len(results)}")
    return 0 if agree == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
