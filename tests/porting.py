"""Running porter the way the CLI does, from the repository root, for the tests."""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

from conftest import ROOT, clinic_tree

from porter.cpython import cpython_tree
from porter.diff import unified_diff
from porter.facts_json import analysis_to_json
from porter.inputs import collect_inputs
from porter.pipeline import port_files, scan
from porter.porting import CheckedPort, outcome
from porter.report import checklist


def read(paths: list[Path]):
    """The inputs the CLI would read; a fixture whose fixture.toml names `cpython_tree` is read as
    in that tree (`--cpython-tree`), whose clinic the tests fetch at run time."""
    inputs = collect_inputs([str(p) for p in paths], cwd=ROOT)
    settings = ROOT / paths[0] / "fixture.toml" if len(paths) == 1 else None
    if settings is not None and settings.is_file() and "cpython_tree" in tomllib.loads(settings.read_text()):
        tree = cpython_tree(clinic_tree())
        assert tree is not None
        inputs.cpython_version, inputs.cpython_root = tree.version, str(tree.root)
    return inputs


def scan_json(folder: Path, port_facts: bool = False) -> bytes:
    """The JSON `porter scan --json` writes: without the facts only a port reads, unless asked."""
    inputs = read([folder.relative_to(ROOT)])
    analysis = scan([(f.path, f.data) for f in inputs.files], companions=inputs.companions(), port_facts=port_facts)
    return (json.dumps(analysis_to_json(analysis), indent=2) + "\n").encode()


@functools.cache
def scanned(folder: Path) -> bytes:
    """scan_json(folder) once per process."""
    return scan_json(folder)


@functools.cache
def ported(folder: Path, unsafe: bool = False):
    """port_folder(folder) once per process: several tests read the same port (never change it)."""
    return port_folder(folder, unsafe=unsafe)


def port_folder(folder: Path, unsafe: bool = False, files: dict[str, bytes] | None = None,
                multi_phase_is_done: bool = True):
    """(patch bytes, report text, result) for the sources of a fixture folder."""
    inputs = read([folder.relative_to(ROOT)])
    items = [(f.path, files.get(f.path, f.data) if files else f.data) for f in inputs.files]
    result = port_files(items, unsafe=unsafe, companions=inputs.companions(), multi_phase_is_done=multi_phase_is_done)
    sources = {}
    for mp in result.modules:
        sources.update(mp.sources)
    patch = b"".join(unified_diff(path, data, result.new_text[path])
                     for path, data in items if path in result.new_text)
    given = {path for path, _ in items}
    patch += b"".join(unified_diff(path, b"", text, created=True)
                      for path, text in sorted(result.new_text.items()) if path not in given)
    # Snapshots are made without the compile check (it is slow; the oracle tests compile).
    outcomes = [outcome(mp, None, "not compiled (--no-compile)") for mp in result.modules]
    return patch, checklist(CheckedPort(result, outcomes), sources), result, dict(items)
