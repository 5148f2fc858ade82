"""The oracle on every fixture: originals are refused by isolated subinterpreters, ports pass.

These build each fixture with every CPython >= 3.12 that pyenv has (3.12 and 3.13 here; a
missing one fails test_verify's interpreter test) and import it in isolated subinterpreters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, fixture_dirs
from porting import port_folder

from porter.verify import PORTABLE, find_interpreters, load_fixture, verify, with_surface_kept

REFUSED = "does not support loading in subinterpreters"


def cpython_version(folder) -> tuple[int, int] | None:
    """A fixture set in a stand-in CPython tree: the version its port targets, and the only
    versions it must build on are that one and newer."""
    from porter.cpython import cpython_tree

    if "cpython_tree" in tomllib.loads((folder / "fixture.toml").read_text()):
        return (3, 12)  # read as in CPython v3.12.0's tree (tests/porting.read)
    tree = cpython_tree(load_fixture(folder).sources[0])
    return tree.version if tree is not None else None
EXTENSIONS = [p for p in fixture_dirs() if load_fixture(p).expect != "none"]
IDS = [p.name for p in EXTENSIONS]


@pytest.fixture(scope="module")
def interpreters():
    found = find_interpreters()
    assert {i.version for i in found} >= {"3.12", "3.13"}, f"need CPython 3.12 and 3.13, found {found}"
    return found


def ported_copy(folder, tmp_path, unsafe: bool):
    """The fixture folder with porter's port applied, as files under tmp_path."""
    _, _, result, items = port_folder(folder, unsafe=unsafe)
    dest = tmp_path / folder.name
    shutil.copytree(folder, dest)
    for path in set(items) | set(result.new_text):
        if path in result.new_text:  # a changed source, or a header porter wrote
            (dest / path.split("/", 2)[-1]).parent.mkdir(parents=True, exist_ok=True)
            (dest / path.split("/", 2)[-1]).write_bytes(result.new_text[path])
    return dest, result


def steps(verification, interpreter, *names):
    return {name: verification.step(interpreter.version, name) for name in names}


@pytest.mark.oracle
@pytest.mark.parametrize("folder", EXTENSIONS, ids=IDS)
def test_original_builds_runs_and_is_refused_when_single_phase(folder, interpreters, tmp_path):
    fx = load_fixture(folder)
    if fx.false_claim:
        _builds_and_runs_in_the_main_interpreter(fx, interpreters, tmp_path)
        return
    result = verify(fx.sources, fx.module, fx.smoke, interpreters, isolation=None,
                    workdir=tmp_path / "build", defines=fx.defines)
    for i in interpreters:
        got = steps(result, i, "build", "main-import", "main-smoke", "sub1-import", "sub2-import", "shared-import")
        assert got["build"].ok and got["main-import"].ok and got["main-smoke"].ok, result
        if fx.expect in PORTABLE:
            assert not got["sub1-import"].ok and REFUSED in got["sub1-import"].detail
            assert not got["sub2-import"].ok and REFUSED in got["sub2-import"].detail
            # Single-phase init is refused even where the GIL is shared; a multi-phase module
            # without the slot claims a shared GIL by default.
            if fx.expect == "single-phase":
                assert not got["shared-import"].ok and REFUSED in got["shared-import"].detail
            else:
                assert got["shared-import"].ok, got["shared-import"]
        else:
            assert result.ok, result


def _builds_and_runs_in_the_main_interpreter(fx, interpreters, tmp_path) -> None:
    """An original whose claim of a GIL per interpreter is false (its threads enter Python
    through PyGILState): built and smoke-tested where that claim plays no part."""
    from porter.verify import build_extension

    for i in interpreters:
        built = build_extension(fx.sources, fx.module, i, tmp_path / f"orig-{i.version}", defines=fx.defines)
        assert built.ok and built.extension is not None, built.log
        (tmp_path / f"smoke-{i.version}.py").write_text(fx.smoke, encoding="utf-8")
        run = subprocess.run([i.executable, str(tmp_path / f"smoke-{i.version}.py")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(built.extension).parent)}, timeout=120)
        assert run.returncode == 0, run.stderr


@pytest.mark.oracle
@pytest.mark.parametrize("folder", [p for p in EXTENSIONS if load_fixture(p).expect in PORTABLE],
                         ids=[p.name for p in EXTENSIONS if load_fixture(p).expect in PORTABLE])
def test_port_builds_without_new_warnings_and_passes_the_oracle(folder, interpreters, tmp_path):
    fx = load_fixture(folder)
    if "cpython_tree" in tomllib.loads((folder / "fixture.toml").read_text()):
        # Clinic output of a CPython tree uses that version's private argument parsing
        # (_PyArg_UnpackKeywords is internal from 3.13): it builds with that version only.
        interpreters = [i for i in interpreters if i.version == "%d.%d" % cpython_version(folder)]
    ported, result = ported_copy(folder, tmp_path, fx.unsafe)
    assert sorted(mp.module.name for mp in result.modules if mp.status == "ported") == sorted(fx.modules)
    original = verify(fx.sources, fx.module, fx.smoke, interpreters, workdir=tmp_path / "orig", defines=fx.defines)
    after = verify([ported / s.relative_to(fx.path) for s in fx.sources], fx.module, fx.smoke, interpreters,
                   isolation=fx.isolation, workdir=tmp_path / "port", defines=fx.defines)
    from porter.verify import build_extension

    for i in interpreters:
        before_w = build_extension(fx.sources, fx.module, i, tmp_path / f"w0-{i.version}",
                                   defines=fx.defines).warnings
        after_w = build_extension([ported / s.relative_to(fx.path) for s in fx.sources], fx.module, i,
                                  tmp_path / f"w1-{i.version}", defines=fx.defines).warnings
        assert set(after_w) <= set(before_w), f"new warnings on {i.version}: {set(after_w) - set(before_w)}"
    kept = [s for s in with_surface_kept(after, original).steps if s.name == "surface-kept"]
    assert len(kept) == len(interpreters) and all(s.ok for s in kept), kept
    if fx.port == "isolated":
        assert after.ok, after
    else:
        # porter said it could not do everything: the port still works in the main
        # interpreter, and the module does not claim what it cannot keep. What it does claim
        # holds: a module supporting subinterpreters that share the GIL imports and passes its
        # smoke test in one (a claim that holds only under a build condition counts as made).
        posture = result.modules[0].posture
        shares = posture.value != "Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED" or posture.condition is not None
        for i in interpreters:
            got = steps(after, i, "build", "main-import", "main-smoke", "second-load", "leak", "sub1-import",
                        "shared-import", "shared-smoke")
            assert got["build"].ok and got["main-import"].ok and got["main-smoke"].ok, after
            assert got["second-load"].ok and got["leak"].ok, after
            assert not got["sub1-import"].ok and REFUSED in got["sub1-import"].detail
            if shares:
                assert got["shared-import"].ok and got["shared-smoke"].ok, after
            else:
                assert not got["shared-import"].ok and REFUSED in got["shared-import"].detail
        assert any(not it.done for it in result.modules[0].items), "a partial port must say what is left"


@pytest.mark.oracle
@pytest.mark.parametrize("folder", [p for p in EXTENSIONS if load_fixture(p).expect in PORTABLE],
                         ids=[p.name for p in EXTENSIONS if load_fixture(p).expect in PORTABLE])
def test_port_builds_on_311_without_new_warnings(folder, tmp_path):
    """3.11 has no isolated subinterpreters to import into, but ports must still build there."""
    from porter.verify import build_extension

    found = [i for i in find_interpreters(minimum=(3, 11)) if i.version == "3.11"]
    assert found, "need CPython 3.11 (pyenv) to check that ports build on it"
    fx = load_fixture(folder)
    if (cpython_version(folder) or (3, 11)) > (3, 11):
        pytest.skip("the port targets its CPython tree's version")
    ported, _ = ported_copy(folder, tmp_path, fx.unsafe)
    before = build_extension(fx.sources, fx.module, found[0], tmp_path / "orig", defines=fx.defines)
    after = build_extension([ported / s.relative_to(fx.path) for s in fx.sources], fx.module, found[0], tmp_path / "port",
                            defines=fx.defines)
    assert before.ok and after.ok, after.log
    assert set(after.warnings) <= set(before.warnings)


def build_variants(folder) -> list[list[str]]:
    """fixture.toml's `build_variants`: -D/-U sets of builds porter did not read (another platform,
    a feature macro), in which the port must build as well as the original does."""
    return tomllib.loads((folder / "fixture.toml").read_text())["build_variants"]


VARIANT_FIXTURES = [p for p in EXTENSIONS if "build_variants" in tomllib.loads((p / "fixture.toml").read_text())]


def _syntax_check(interpreter, source, flags) -> tuple[bool, set[str], str]:
    """gcc -fsyntax-only with porter's compile-check flags: ok, normalised diagnostics, output."""
    from porter.compile_check import FLAGS
    from porter.verify import normalise_diagnostic

    include = subprocess.run([str(interpreter.executable), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    done = subprocess.run(["gcc", *FLAGS, *flags, f"-I{source.parent}", f"-I{include}", source.name],
                          capture_output=True, text=True, cwd=source.parent, env={**os.environ, "LC_ALL": "C"})
    out = done.stdout + done.stderr
    return done.returncode == 0, {d for line in out.splitlines() if (d := normalise_diagnostic(line))}, out


@pytest.mark.oracle
@pytest.mark.parametrize("folder", VARIANT_FIXTURES, ids=[p.name for p in VARIANT_FIXTURES])
def test_port_builds_in_the_builds_porter_did_not_read(folder, interpreters, tmp_path):
    """Code under `#ifdef __APPLE__`, `#ifndef __linux__` or a feature macro: with those -D/-U the
    original builds, and so must the port, with no new diagnostics."""
    fx = load_fixture(folder)
    ported, _ = ported_copy(folder, tmp_path, fx.unsafe)
    assert build_variants(folder)
    for flags in build_variants(folder):
        for i in interpreters:
            for source in fx.sources:
                ok0, before, _ = _syntax_check(i, source, flags)
                ok1, after, log = _syntax_check(i, ported / source.relative_to(fx.path), flags)
                assert ok0, f"the original does not build with {flags} on {i.version}"
                assert ok1 and after <= before, f"{flags} on {i.version}: {after - before}\n{log}"


@pytest.mark.oracle
@pytest.mark.parametrize("folder", [p for p in EXTENSIONS if load_fixture(p).expect in PORTABLE],
                         ids=[p.name for p in EXTENSIONS if load_fixture(p).expect in PORTABLE])
def test_porters_own_compile_check_agrees_with_the_fixture(folder):
    """porter's status after its compile check: `compiles` for a full port, `partial` otherwise."""
    from porting import read

    from porter.porting import checked_port
    from porter.status import Status

    fx = load_fixture(folder)
    if cpython_version(folder) is not None:
        pytest.skip("a module of a CPython tree compiles against that tree's headers: a stand-in tree has none")
    inputs = read([folder.relative_to(folder.parent.parent)])
    done = checked_port([(f.path, f.data) for f in inputs.files], unsafe=fx.unsafe, companions=inputs.companions())
    assert len(done.outcomes) == len(fx.modules)
    expected = Status.COMPILES if fx.port == "isolated" else Status.PARTIAL
    for outcome in done.outcomes:
        assert outcome.status is expected, (outcome, [str(d) for c in done.checks.values() for d in c.added])


@pytest.mark.oracle
def test_a_package_is_verified_through_its_own_build_and_port_verify_says_isolated(tmp_path, interpreters):
    """`porter verify PKG` builds with pip's --no-build-isolation (its macros apply), and
    `porter port --verify` calls a module isolated only after that build imports in isolated
    subinterpreters."""
    from test_cli import run

    pkg = tmp_path / "pkg"
    (pkg / "src").mkdir(parents=True)
    (pkg / "src" / "counter.c").write_bytes(
        (ROOT / "fixtures" / "globals-counter" / "counter.c").read_bytes().replace(
            b"#include <Python.h>", b"#include <Python.h>\n#ifndef COUNTER_BUILD\n#error built without setup.py\n#endif"))
    (pkg / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(name='counter', version='1', ext_modules=[Extension('counter', ['src/counter.c'], "
        "define_macros=[('COUNTER_BUILD', '1')])])\n")
    smoke = tmp_path / "smoke.py"
    smoke.write_text((ROOT / "fixtures" / "globals-counter" / "smoke.py").read_text())
    original = run("verify", str(pkg), "--module", "counter", "--smoke", str(smoke))
    assert original.returncode == 1 and "does not support loading in subinterpreters" in original.stdout
    assert re.search(r"main-smoke +ok", original.stdout)
    ported = run("port", "src/counter.c", "--verify", "--smoke", str(smoke), cwd=pkg)
    assert ported.returncode == 0 and "porter: counter: isolated" in ported.stderr, ported.stderr
