"""Tests for porter.verify: building extensions and checking them in isolated subinterpreters."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from porter.verify import (
    BuildResult,
    FixtureError,
    Interpreter,
    Step,
    Verification,
    build_extension,
    find_interpreters,
    format_verification,
    load_fixture,
    normalise_diagnostic,
    surface_differences,
    verify,
)

# -- C modules written for these tests

SINGLE_PHASE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
add(PyObject *self, PyObject *args)
{
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) {
        return NULL;
    }
    return PyLong_FromLong(a + b);
}

static PyMethodDef legacy_methods[] = {
    {"add", add, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef legacy_def = {
    PyModuleDef_HEAD_INIT, "legacy", NULL, -1, legacy_methods,
};

PyMODINIT_FUNC
PyInit_legacy(void)
{
    return PyModule_Create(&legacy_def);
}
"""
SINGLE_PHASE_SMOKE = "import legacy\nassert legacy.add(2, 3) == 5\n"

# A multi-phase module whose state holds a heap type; RELEASE is replaced by the
# m_traverse/m_clear/m_free members, or by nothing to make the type leak.
MULTI_PHASE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyTypeObject *counter_type;
} module_state;

typedef struct {
    PyObject_HEAD
    long value;
} CounterObject;

static PyObject *
Counter_increment(CounterObject *self, PyObject *Py_UNUSED(ignored))
{
    self->value++;
    return PyLong_FromLong(self->value);
}

static void
Counter_dealloc(CounterObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef Counter_methods[] = {
    {"increment", (PyCFunction)Counter_increment, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Counter_slots[] = {
    {Py_tp_dealloc, Counter_dealloc},
    {Py_tp_methods, Counter_methods},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec Counter_spec = {
    "NAME.Counter", sizeof(CounterObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, Counter_slots,
};

static PyObject *
make(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    module_state *state = PyModule_GetState(module);
    return PyObject_CallNoArgs((PyObject *)state->counter_type);
}

static PyMethodDef module_methods[] = {
    {"make", make, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    state->counter_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Counter_spec, NULL);
    if (state->counter_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, state->counter_type);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = PyModule_GetState(module);
    Py_VISIT(state->counter_type);
    return 0;
}

static int
module_clear(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    Py_CLEAR(state->counter_type);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "NAME",
    .m_size = sizeof(module_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
RELEASE};

PyMODINIT_FUNC
PyInit_NAME(void)
{
    return PyModuleDef_Init(&module_def);
}
"""
RELEASE = "    .m_traverse = module_traverse,\n    .m_clear = module_clear,\n    .m_free = module_free,\n"
MULTI_PHASE_SMOKE = """\
import NAME
made = NAME.make()
assert made.increment() == 1
assert type(made) is NAME.Counter
"""

STATIC_TYPE = """\
#include <Python.h>

static PyTypeObject Point_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "halfport.Point",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};

static int
module_exec(PyObject *module)
{
    return PyModule_AddType(module, &Point_Type);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, .m_name = "halfport", .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit_halfport(void)
{
    return PyModuleDef_Init(&module_def);
}
"""

COMPILE_ERROR = """\
#include <Python.h>

static int broken(void) { return 1 }
"""

WITH_WARNING = """\
#include <Python.h>

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "noisy", NULL, -1, NULL};

PyMODINIT_FUNC
PyInit_noisy(void)
{
    int unused;
    return PyModule_Create(&module_def);
}
"""


def multi_phase(name: str, *, release_state: bool = True) -> tuple[str, str]:
    source = MULTI_PHASE.replace("NAME", name).replace("RELEASE", RELEASE if release_state else "")
    return source, MULTI_PHASE_SMOKE.replace("NAME", name)


def write_source(folder: Path, module: str, text: str) -> Path:
    path = folder / f"{module}.c"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def interpreters() -> list[Interpreter]:
    found = find_interpreters()
    assert found, "no CPython >= 3.12 found; the oracle tests need pyenv 3.12 and 3.13"
    return found


def assert_steps(verification: Verification, expected: dict[str, bool], interpreters: list[Interpreter]) -> None:
    for interp in interpreters:
        got = {name: verification.step(interp.version, name) for name in expected}
        assert all(got.values()), format_verification(verification)
        assert {name: step.ok for name, step in got.items()} == expected, format_verification(verification)


ALL_OK = dict.fromkeys(
    ["build", "main-import", "main-smoke", "surface", "sub1-import", "sub1-smoke", "sub2-import", "sub2-smoke",
     "shared-import", "shared-smoke", "isolation", "heap-types", "second-load", "leak"],
    True,
)


# -- interpreters


def test_find_interpreters_finds_the_machines_312_and_313() -> None:
    # Not a skip when missing: CI relies on both versions being checked.
    found = {interp.version: interp for interp in find_interpreters()}
    assert {"3.12", "3.13"} <= set(found), found
    for interp in found.values():
        assert interp.executable.exists()


def drop_overrides(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("PORTER_PYTHON")]:
        monkeypatch.delenv(name)


def fake_pyenv(root: Path, *names: str) -> None:
    for name in names:
        exe = root / "versions" / name / "bin" / "python3"
        exe.parent.mkdir(parents=True)
        exe.write_text("")


def test_find_interpreters_takes_the_newest_patch_release_numerically(tmp_path, monkeypatch) -> None:
    fake_pyenv(tmp_path, "3.12.9", "3.12.10", "3.12.2", "3.13.0", "3.13.0t", "3.11.7", "3.14-dev")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    drop_overrides(monkeypatch)
    found = find_interpreters()
    assert [(i.version, i.executable.parents[1].name) for i in found] == [("3.12", "3.12.10"), ("3.13", "3.13.0")]
    assert [i.version for i in find_interpreters(minimum=(3, 11))] == ["3.11", "3.12", "3.13"]


def test_find_interpreters_prefers_a_porter_python_override(tmp_path, monkeypatch) -> None:
    fake_pyenv(tmp_path, "3.12.1")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    drop_overrides(monkeypatch)
    monkeypatch.setenv("PORTER_PYTHON312", "/opt/python3.12/bin/python3")
    monkeypatch.setenv("PORTER_PYTHON314", "/opt/python3.14/bin/python3")
    assert find_interpreters() == [
        Interpreter("3.12", Path("/opt/python3.12/bin/python3")),
        Interpreter("3.14", Path("/opt/python3.14/bin/python3")),
    ]


# -- reports and fixtures


def test_verification_without_steps_is_not_ok() -> None:
    assert not Verification(()).ok


def test_verify_without_interpreters_is_a_failed_step() -> None:
    result = verify([], "m", "", interpreters=[])
    assert not result.ok
    assert "PORTER_PYTHON312" in result.steps[0].detail


def test_missing_interpreter_fails_the_build_step_without_raising(tmp_path) -> None:
    missing = Interpreter("3.99", tmp_path / "no-python")
    result = verify([tmp_path / "m.c"], "m", "import m\n", [missing], workdir=tmp_path)
    build = result.step("3.99", "build")
    assert not build.ok and build.detail.startswith(f"cannot ask {missing.executable} for its build settings")
    assert result.step("3.99", "leak").detail == "skipped: build failed"


def test_format_verification_gives_one_row_per_step_and_a_verdict() -> None:
    verification = Verification((
        Step("3.12", "build", True),
        Step("3.12", "sub1-import", False, "ImportError: no"),
    ))
    assert format_verification(verification) == textwrap.dedent("""\
        python  step         result  detail
        3.12    build        ok
        3.12    sub1-import  FAIL    ImportError: no
        FAILED: 1 of 2 steps failed
        """)


def test_normalise_diagnostic_drops_directories_and_positions() -> None:
    line = "/tmp/x/y/mod.c:12:9: warning: unused variable 'x' [-Wunused-variable]"
    assert normalise_diagnostic(line) == "mod.c: warning: unused variable 'x' [-Wunused-variable]"
    assert normalise_diagnostic("/tmp/x/mod.c: In function 'f':") is None
    assert normalise_diagnostic("mod.c:3:1: error: expected ';'") is None


def test_load_fixture_reads_toml_smoke_and_isolation(tmp_path) -> None:
    (tmp_path / "fixture.toml").write_text(
        'module = "spam"\nsources = ["spam.c", "util.c"]\nexpect = "single-phase"\nsummary = "a counter"\n'
    )
    (tmp_path / "smoke.py").write_text("import spam\n")
    fixture = load_fixture(tmp_path)
    assert fixture.module == "spam"
    assert fixture.sources == (tmp_path / "spam.c", tmp_path / "util.c")
    assert (fixture.expect, fixture.summary, fixture.smoke, fixture.isolation) == (
        "single-phase", "a counter", "import spam\n", None)
    (tmp_path / "isolation.py").write_text("pass\n")
    assert load_fixture(tmp_path).isolation == "pass\n"


def test_load_fixture_refuses_an_extension_without_smoke_test(tmp_path) -> None:
    (tmp_path / "fixture.toml").write_text(
        'module = "spam"\nsources = ["spam.c"]\nexpect = "multi-phase"\nsummary = "s"\n'
    )
    with pytest.raises(FixtureError, match="smoke.py"):
        load_fixture(tmp_path)


# -- building and the oracle


@pytest.mark.oracle
def test_single_phase_module_is_refused_in_isolated_subinterpreters(tmp_path, interpreters) -> None:
    source = write_source(tmp_path, "legacy", SINGLE_PHASE)
    result = verify([source], "legacy", SINGLE_PHASE_SMOKE, interpreters, workdir=tmp_path / "work")
    assert_steps(result, {"build": True, "main-import": True, "main-smoke": True, "sub1-import": False,
                          "sub1-smoke": False, "shared-import": False, "shared-smoke": False, "leak": True},
                 interpreters)
    for interp in interpreters:
        refused = result.step(interp.version, "sub1-import")
        assert refused.detail == "ImportError: module legacy does not support loading in subinterpreters"
        # Sharing the main GIL does not let single-phase init in either.
        assert result.step(interp.version, "shared-import").detail == refused.detail
        assert result.step(interp.version, "sub1-smoke").detail == "skipped: import failed"
    assert not result.ok


@pytest.mark.oracle
def test_multi_phase_module_with_heap_type_passes_every_step(tmp_path, interpreters) -> None:
    source, smoke = multi_phase("counter")
    isolation = "import counter\nassert type(counter.make()) is counter.Counter\n"
    result = verify([write_source(tmp_path, "counter", source)], "counter", smoke, interpreters,
                    isolation=isolation, workdir=tmp_path / "work")
    assert_steps(result, ALL_OK, interpreters)
    assert result.ok, format_verification(result)
    assert len(result.steps) == len(ALL_OK) * len(interpreters)
    for interp in interpreters:
        assert result.step(interp.version, "heap-types").detail == "1 heap type"
        assert result.step(interp.version, "leak").detail == "modules 1->1, types 1->1 after 50 loads"


@pytest.mark.oracle
def test_module_state_holding_a_type_without_m_clear_fails_the_leak_step(tmp_path, interpreters) -> None:
    source, smoke = multi_phase("leaky", release_state=False)
    result = verify([write_source(tmp_path, "leaky", source)], "leaky", smoke, interpreters,
                    workdir=tmp_path / "work", leak_cycles=10)
    expected = dict(ALL_OK, leak=False)
    del expected["isolation"]  # no isolation script: no isolation step
    assert_steps(result, expected, interpreters)
    for interp in interpreters:
        assert result.step(interp.version, "isolation") is None
        # The second-load step's module and the warm-up load leak too, hence 3 before the cycles.
        assert result.step(interp.version, "leak").detail == "modules 3->13, types 3->13 after 10 loads"


@pytest.mark.oracle
def test_static_type_fails_the_heap_types_step(tmp_path, interpreters) -> None:
    smoke = "import halfport\nhalfport.Point()\n"
    result = verify([write_source(tmp_path, "halfport", STATIC_TYPE)], "halfport", smoke, interpreters,
                    workdir=tmp_path / "work")
    for interp in interpreters:
        step = result.step(interp.version, "heap-types")
        assert not step.ok, format_verification(result)
        assert step.detail == "main: static types (no Py_TPFLAGS_HEAPTYPE): Point; " \
                              "sub1: static types (no Py_TPFLAGS_HEAPTYPE): Point"
        assert result.step(interp.version, "main-smoke").ok


@pytest.mark.oracle
def test_isolation_failure_names_the_interpreters_that_failed(tmp_path, interpreters) -> None:
    source, smoke = multi_phase("marker")
    # os.environ is per interpreter but putenv() is per process: main marks, the subinterpreters see it.
    isolation = textwrap.dedent("""\
        import os
        assert "PORTER_TEST_MARK" not in os.environ, "process state seen twice"
        os.environ["PORTER_TEST_MARK"] = "1"
        """)
    result = verify([write_source(tmp_path, "marker", source)], "marker", smoke, interpreters[:1],
                    isolation=isolation, workdir=tmp_path / "work")
    step = result.step(interpreters[0].version, "isolation")
    assert not step.ok
    assert step.detail == ("sub1: AssertionError: process state seen twice (isolation.py:2); "
                           "sub2: AssertionError: process state seen twice (isolation.py:2)")


@pytest.mark.oracle
def test_compile_error_fails_the_build_step_without_raising(tmp_path, interpreters) -> None:
    result = verify([write_source(tmp_path, "broken", COMPILE_ERROR)], "broken", "import broken\n",
                    interpreters, workdir=tmp_path / "work")
    for interp in interpreters:
        build = result.step(interp.version, "build")
        assert not build.ok
        assert build.detail == "broken.c:3: error: expected ';' before '}' token"
        assert result.step(interp.version, "main-import").detail == "skipped: build failed"
    direct = build_extension([tmp_path / "broken.c"], "broken", interpreters[0], tmp_path / "direct")
    assert not direct.ok and direct.extension is None
    assert "error: expected ';'" in direct.log


@pytest.mark.oracle
def test_build_reports_warnings_in_comparable_form(tmp_path, interpreters) -> None:
    source = write_source(tmp_path, "noisy", WITH_WARNING)
    for interp in interpreters:
        result = build_extension([source], "noisy", interp, tmp_path / interp.version)
        assert result == BuildResult(True, result.extension, result.warnings, result.log)
        assert result.ok, result.log
        assert result.extension.name.startswith("noisy.cpython-")
        assert result.extension.exists()
        assert result.warnings == ("noisy.c: warning: unused variable 'unused' [-Wunused-variable]",)


@pytest.mark.oracle
def test_failed_smoke_reports_exception_and_script_line(tmp_path, interpreters) -> None:
    smoke = "import legacy\nassert legacy.add(2, 2) == 5, 'bad sum'\n"
    result = verify([write_source(tmp_path, "legacy", SINGLE_PHASE)], "legacy", smoke, interpreters[:1],
                    workdir=tmp_path / "work")
    step = result.step(interpreters[0].version, "main-smoke")
    assert (step.ok, step.detail) == (False, "AssertionError: bad sum (smoke.py:2)")


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("smoke", "failure"),
    [
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "child process crashed (SIGSEGV)"),
        ("import os\nos._exit(3)\n", "child process exited with status 3"),
    ],
    ids=["segfault", "exit-status"],
)
def test_death_of_the_child_is_a_failed_step(tmp_path, interpreters, smoke, failure) -> None:
    result = verify([write_source(tmp_path, "legacy", SINGLE_PHASE)], "legacy", smoke, interpreters[:1],
                    workdir=tmp_path / "work")
    version = interpreters[0].version
    assert result.step(version, "main-import").ok
    died = result.step(version, "main-smoke")
    assert not died.ok
    assert died.detail.startswith(f"{failure} during main-smoke in main")
    assert result.step(version, "leak").detail == f"not run: {failure} during main-smoke in main"


@pytest.mark.oracle
def test_timeout_of_the_child_is_a_failed_step(tmp_path, interpreters) -> None:
    smoke = "import time\ntime.sleep(60)\n"
    result = verify([write_source(tmp_path, "legacy", SINGLE_PHASE)], "legacy", smoke, interpreters[:1],
                    workdir=tmp_path / "work", timeout=1)
    step = result.step(interpreters[0].version, "main-smoke")
    assert (step.ok, step.detail) == (False, "child process timed out after 1s during main-smoke in main")


@pytest.mark.oracle
def test_the_surface_step_sees_a_type_that_became_mutable(tmp_path, interpreters) -> None:
    source, smoke = multi_phase("shape")
    mutable = source.replace(" | Py_TPFLAGS_IMMUTABLETYPE", "")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = verify([write_source(tmp_path / "a", "shape", source)], "shape", smoke, interpreters,
                    workdir=tmp_path / "wa")
    after = verify([write_source(tmp_path / "b", "shape", mutable)], "shape", smoke, interpreters,
                   workdir=tmp_path / "wb")
    for interp in interpreters:
        old, new = before.step(interp.version, "surface"), after.step(interp.version, "surface")
        assert old.ok and new.ok and old.detail == "1 types"
        assert surface_differences(old.data, old.data) == []
        assert surface_differences(old.data, new.data) == [
            "types.Counter.flags: ['IMMUTABLETYPE'] -> []",
            "types.Counter.set-attribute: 'TypeError' -> 'ok'",
        ]


def test_a_fixture_builds_with_the_macros_its_setup_py_gives():
    from conftest import ROOT

    fx = load_fixture(ROOT / "fixtures" / "limited-api-below-312")
    assert ("Py_LIMITED_API", "0x030A0000") in fx.defines
    fx = load_fixture(ROOT / "fixtures" / "build-defines-decide-branches")
    assert dict(fx.defines) == {"TALLY_STEP": "2", "_PY3K": "1"}
