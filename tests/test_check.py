"""`porter check` for CI and pre-commit, and `porter report` for a tree."""

from __future__ import annotations

import json
import shutil

from conftest import FIXTURES
from test_cli import run

COUNTER = FIXTURES / "globals-counter" / "counter.c"
ISOLATED = FIXTURES / "multiphase-noop" / "already.c"


def project(tmp_path, allow: str = "") -> None:
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = 'pkg'\n{allow}")


def test_an_isolated_module_passes(tmp_path):
    project(tmp_path)
    shutil.copy(ISOLATED, tmp_path)
    out = run("check", ".", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == "", out.stdout
    assert "0 findings in 1 module" in out.stderr


def test_a_new_global_fails_with_its_place(tmp_path):
    project(tmp_path)
    shutil.copy(ISOLATED, tmp_path)
    source = tmp_path / "already.c"
    source.write_text(source.read_text().replace("#include <Python.h>", "#include <Python.h>\nstatic long hits;\n"
                                                  "static void bump(void) { hits++; }", 1))
    out = run("check", ".", cwd=tmp_path)
    assert out.returncode == 1
    assert "already.c:10:13: process-global `hits` (mutable-data) is process-global state" in out.stdout, out.stdout


def test_an_allow_listed_global_passes_and_the_rest_still_fails(tmp_path):
    project(tmp_path, '[tool.porter]\nallow = [{module = "counter", global = "calls", reason = "a counter shared '
                      'on purpose"}, {module = "counter", global = "last_tag", reason = "same"}]\n')
    shutil.copy(COUNTER, tmp_path)
    out = run("check", ".", cwd=tmp_path)
    assert out.returncode == 1
    assert "`calls`" not in out.stdout and "`last_tag`" not in out.stdout
    assert "`limit`" in out.stdout and "single-phase-init" in out.stdout


def test_an_allow_list_entry_without_a_reason_is_an_error(tmp_path):
    project(tmp_path, '[tool.porter]\nallow = [{module = "counter"}]\n')
    shutil.copy(COUNTER, tmp_path)
    out = run("check", ".", cwd=tmp_path)
    assert out.returncode == 2 and "has no reason" in out.stderr and out.stderr.count("\n") == 1


def test_report_tables_every_module_of_a_tree(tmp_path):
    shutil.copy(COUNTER, tmp_path)
    shutil.copy(ISOLATED, tmp_path)
    md = run("report", ".", cwd=tmp_path)
    assert md.returncode == 0
    assert "| `counter.c` | `counter` | single-phase | full | 0 | mutable 3 | 0 |" in md.stdout, md.stdout
    assert "| `already.c` | `already` | already isolated |" in md.stdout
    assert "porter: 2 modules: 1 already isolated, 1 single-phase" in md.stderr
    doc = json.loads(run("report", ".", "--json", cwd=tmp_path).stdout)
    assert doc["schema"] == "porter-report/1" and [m["module"] for m in doc["modules"]] == ["already", "counter"]


def test_an_isolated_module_that_enters_python_from_its_own_thread_fails(tmp_path):
    """A GIL-per-interpreter claim does not hold for Python entered with PyGILState_Ensure() on
    a thread the module starts: the module is not isolated, and check says where."""
    project(tmp_path)
    shutil.copy(ISOLATED, tmp_path)
    source = tmp_path / "already.c"
    source.write_text(source.read_text().replace("#include <Python.h>", """#include <Python.h>
#include <pthread.h>
static void *worker(void *arg) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(PyObject_CallNoArgs((PyObject *)arg));
    PyGILState_Release(g);
    return NULL;
}
static int start(PyObject *callable) { pthread_t t; return pthread_create(&t, NULL, worker, callable); }
""", 1))
    out = run("check", ".", cwd=tmp_path)
    assert out.returncode == 1
    assert "already.c:12:26: foreign-thread worker() enters Python with PyGILState_Ensure()" in out.stdout, out.stdout
    md = run("report", ".", cwd=tmp_path)
    assert "| `already.c` | `already` | not isolated |" in md.stdout, md.stdout
    # The port gives the slot the claim that holds, and says why.
    ported = run("port", "already.c", cwd=tmp_path)
    assert ported.returncode == 0, ported.stderr
    assert "-    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},\n" \
           "+    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},\n" in ported.stdout, ported.stdout
    assert ported.stdout.count("\n-") == 1, ported.stdout  # nothing else changes
    assert "porter: already: partial: worker() enters Python with PyGILState_Ensure() on a thread the module " \
           "starts" in ported.stderr, ported.stderr
