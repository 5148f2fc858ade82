"""Every fixture, through scan and port: snapshots, patch shape, idempotence, determinism."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ROOT, fixture_dirs
from porting import port_folder, ported, read, scan_json, scanned
from snapshots import check_snapshot

from porter.verify import PORTABLE, load_fixture

FIXTURES = fixture_dirs()
IDS = [p.name for p in FIXTURES]
SINGLE_PHASE = [p for p in FIXTURES if load_fixture(p).expect in PORTABLE]


def by_fixture(folders):
    """One worker takes every test of a fixture, so that its port is computed once there."""
    return [pytest.param(p, id=p.name, marks=pytest.mark.xdist_group(p.name)) for p in folders]


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_scan_json_matches_snapshot(folder, update_snapshots):
    check_snapshot(folder / "expected.scan.json", scanned(folder), update_snapshots)


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_port_patch_and_report_match_snapshots(folder, update_snapshots):
    fixture = load_fixture(folder)
    patch, report, result, _ = ported(folder, fixture.unsafe)
    check_snapshot(folder / "expected.patch", patch, update_snapshots)
    check_snapshot(folder / "expected.report.md", report.encode(), update_snapshots)


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_every_single_phase_fixture_ports_and_nothing_else_changes(folder):
    fixture = load_fixture(folder)
    patch, _, result, _ = ported(folder, fixture.unsafe)
    statuses = {mp.module.name: mp.status for mp in result.modules}
    if fixture.expect in PORTABLE:
        assert statuses == dict.fromkeys(fixture.modules, "ported")
        assert patch
    elif fixture.expect == "multi-phase":
        assert statuses == {fixture.module: "nothing-to-do"}
        assert patch == b""
    else:
        assert statuses == {}
        assert patch == b""


@pytest.mark.parametrize("folder", by_fixture(SINGLE_PHASE))
def test_patch_applies_with_git_apply_and_patch(folder, tmp_path):
    fixture = load_fixture(folder)
    patch, _, _, _ = ported(folder, fixture.unsafe)
    for tool in (["git", "apply", "--check", "-"], ["patch", "-p1", "--dry-run", "--quiet"]):
        work = tmp_path / tool[0]
        shutil.copytree(folder, work / "fixtures" / folder.name)
        done = subprocess.run(tool, input=patch, cwd=work, capture_output=True)
        assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_porting_the_port_again_changes_nothing(folder):
    fixture = load_fixture(folder)
    _, _, first, items = ported(folder, fixture.unsafe)
    output = {path: first.new_text.get(path, data) for path, data in items.items()}
    patch, _, second, _ = port_folder(folder, unsafe=fixture.unsafe, files=output)
    assert patch == b""
    assert all(mp.status == "nothing-to-do" for mp in second.modules)


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_every_step_finds_nothing_left_in_a_port_even_without_the_multi_phase_shortcut(folder):
    fixture = load_fixture(folder)
    _, _, first, items = ported(folder, fixture.unsafe)
    output = {path: first.new_text.get(path, data) for path, data in items.items()}
    patch, _, second, _ = port_folder(folder, unsafe=fixture.unsafe, files=output, multi_phase_is_done=False)
    assert patch == b"", patch.decode()
    assert all(mp.status == "nothing-to-do" for mp in second.modules), [(m.status, m.reason) for m in second.modules]


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_output_is_deterministic(folder):
    fixture = load_fixture(folder)
    first = ported(folder, fixture.unsafe)  # the run the snapshot tests compared
    second = port_folder(folder, unsafe=fixture.unsafe)
    assert first[0] == second[0] and first[1] == second[1]
    assert scanned(folder) == scan_json(folder)


@pytest.mark.parametrize("folder", by_fixture(FIXTURES))
def test_the_facts_only_a_port_reads_change_nothing_a_scan_reports(folder):
    assert scanned(folder) == scan_json(folder, port_facts=True)


def test_a_port_refuses_an_analysis_read_without_the_facts_only_a_port_reads():
    from porter.pipeline import scan
    from porter.rewrite.port import port

    inputs = read([(ROOT / "fixtures" / "globals-counter").relative_to(ROOT)])
    analysis = scan([(f.path, f.data) for f in inputs.files], companions=inputs.companions(), port_facts=False)
    with pytest.raises(ValueError, match="facts only a port reads"):
        port(analysis)


def test_the_repository_has_enough_fixtures():
    kinds = {load_fixture(p).expect for p in FIXTURES}
    assert len(FIXTURES) >= 14 and kinds == {"single-phase", "not-isolated", "multi-phase", "none"}
    assert (ROOT / "fixtures").is_dir()
