"""Two porters' patches for a whole corpus, compared byte for byte: which packages a change touches.

    python benchmarks/compare_patches.py --old 'CMD' --new 'CMD' [--corpus FILE] [--only a,b]
        [--cpython-tree DIR]

Each command is a porter command line (`/path/to/venv/bin/python -m porter`, a copy of an older
commit installed in a venv of its own); `port --no-compile` is run with it from each unpacked
sdist root on the entry's `files`, and the two patches are compared. A change that leaves a
package's patch byte-identical leaves its harness result, its own test suite and its in-tree
result as they were: only the packages this lists need running again. The sdists come from the
shared harness's cache (`realworld.py --corpus FILE` downloads them once). With `--cpython-tree`
the modules `cpython_intree.py` ports are compared too, run from that CPython checkout.

Prints one line per package (`same` or `CHANGED`, and each porter's last line), then the changed
ones as a comma list for `--only`. Exit status 2 when a sdist is missing from the cache.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE / "corpus.toml"
HARNESS_CACHE = Path(os.environ.get("PORTER_EVAL_CACHE", os.path.join(tempfile.gettempdir(),
                                                                      "porter-realworld-cache")))


def unpacked(archive: Path, dest: Path) -> Path:
    """The sdist root of `archive`, unpacked under `dest` (once)."""
    if not dest.exists():
        dest.mkdir(parents=True)
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def port(command: str, files: list[str], cwd: Path, patch: Path) -> tuple[bytes, str]:
    """The patch and porter's last stderr line."""
    argv = [*shlex.split(command), "port", "--no-compile", *files, "-o", str(patch), "--force"]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return (patch.read_bytes() if patch.exists() else b""), last


def compare(name: str, files: list[str], cwd: Path, args, work: Path) -> bool:
    old, old_says = port(args.old, files, cwd, work / f"{name}.old.patch")
    new, new_says = port(args.new, files, cwd, work / f"{name}.new.patch")
    same = old == new
    print(f"{name:24} {'same' if same else 'CHANGED':8} | {old_says[-70:]} | {new_says[-70:]}", flush=True)
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the porter to compare against (a command line)")
    parser.add_argument("--new", required=True, help="the porter under test (a command line)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--only", default="", help="comma list of package names")
    parser.add_argument("--cpython-tree", type=Path, help="also the modules cpython_intree.py ports, from this tree")
    args = parser.parse_args()
    with open(args.corpus, "rb") as f:
        packages = tomllib.load(f)["package"]
    only = {n for n in args.only.split(",") if n}
    work = Path(tempfile.mkdtemp(prefix="compare-patches-"))
    changed: list[str] = []
    for pkg in packages:
        if only and pkg["name"] not in only:
            continue
        folder = HARNESS_CACHE / "sdist" / f"{pkg['name']}-{pkg['version']}"
        archives = [p for p in folder.glob("*") if p.suffix in (".gz", ".zip", ".bz2", ".tgz")] \
            if folder.is_dir() else []
        if not archives:
            print(f"compare_patches: no sdist of {pkg['name']} in {folder.parent}: run realworld.py "
                  f"--corpus {args.corpus} first", file=sys.stderr)
            return 2
        root = unpacked(archives[0], work / "src" / folder.name)
        if not compare(pkg["name"], pkg["files"], root, args, work):
            changed.append(pkg["name"])
    if args.cpython_tree is not None:
        sys.path.insert(0, str(HERE))
        from cpython_intree import TARGETS

        for target in TARGETS:
            if not compare(target.name, list(target.sources), args.cpython_tree, args, work):
                changed.append(target.name)
    print(f"changed: {','.join(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
