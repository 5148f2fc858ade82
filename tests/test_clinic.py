"""Argument Clinic in CPython's tree: which clinic inputs can take a defining class, the
interpreter the tree's clinic runs with, and a port that really runs it (v3.12.0's clinic,
fetched at run time by .ci/fetch-clinic: these tests fail without it)."""

from __future__ import annotations

import pytest
from conftest import FIXTURES, clinic_tree
from porting import port_folder

from porter import clinic_run
from porter.analyze.clinic_input import clinic_functions
from porter.cpython import cpython_tree

FIXTURE = FIXTURES / "clinic-defining-class"


def _block(function: str, params: str = "", decorators: str = "") -> bytes:
    return (f"/*[clinic input]\n{decorators}{function}\n\n{params}\nDoc.\n[clinic start generated code]*/\n\n"
            "static PyObject *\nm_f_impl(PyObject *self)\n/*[clinic end generated code: output=0 input=0]*/\n"
            ).encode()


@pytest.mark.parametrize(("block", "refused"), [
    pytest.param(_block("m.T.get", "    key: object\n    /\n"), "", id="a plain method can take a defining class"),
    pytest.param(_block("m.T.__init__", "    x: long\n"), "slot methods", id="__init__ cannot"),
    pytest.param(_block("m.T.__new__"), "slot methods", id="__new__ cannot"),
    pytest.param(_block("m.T.get", decorators="@classmethod\n"), "class or static", id="a class method cannot"),
    pytest.param(_block("m.T.other = m.T.get"), "clones", id="a clone cannot"),
    pytest.param(_block("m.T.get", "    a: long\n    [\n    b: long\n    ]\n    /\n"), "optional groups",
                 id="a method with optional groups cannot (clinic 3.12 writes an undeclared cls)"),
    pytest.param(_block("m.T.get", "    *args: object\n"), "*args", id="a method with *args cannot"),
])
def test_which_clinic_inputs_can_take_a_defining_class(block, refused):
    (found,) = clinic_functions("m.c", block)
    assert found.impl == "m_f_impl"
    assert (refused in found.refusal) if refused else found.refusal == ""


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param("    self: self(type=\"T *\")\n        The object.\n    key: object\n    /\n",
                 "    self: self(type=\"T *\")\n        The object.\n    cls: defining_class\n    key: object\n",
                 id="after self and its docstring"),
    pytest.param("  key: object\n  /\n", "\n  cls: defining_class\n  key: object\n",
                 id="first, with the block's indentation"),
    pytest.param("", "\n    cls: defining_class\n\nDoc.", id="a section of its own when there are no parameters"),
])
def test_where_the_defining_class_line_goes(params, expected):
    text = _block("m.T.get", params)
    (found,) = clinic_functions("m.c", text)
    line = found.parameter_line.format(name="cls").encode()
    assert expected.encode() in text[:found.parameter_at] + line + text[found.parameter_at:]


def test_the_tree_says_which_interpreters_its_clinic_accepts():
    tree = cpython_tree(clinic_tree())
    assert tree is not None and tree.version == (3, 12)
    assert clinic_run.regen_versions(tree) == [(3, 12), (3, 11), (3, 10)]
    assert clinic_run.clinic_interpreter(tree) is not None


def test_a_port_that_ran_clinic_is_what_clinic_writes_again():
    """The regenerated files are clinic's own output: running it again changes nothing."""
    patch, report, result, items = port_folder(FIXTURE)
    assert b"+    cls: defining_class\n" in patch and b"METH_METHOD|METH_FASTCALL|METH_KEYWORDS" in patch
    assert "ran `Tools/clinic/clinic.py`" in report
    tree = cpython_tree(clinic_tree())
    assert tree is not None
    texts = {**items, **result.new_text}
    source = next(p for p in texts if p.endswith("/tally.c"))
    interpreter = clinic_run.clinic_interpreter(tree)
    assert interpreter is not None
    again = clinic_run.run_clinic(tree, interpreter, source, texts)
    assert again.error == "" and again.regenerated == {}


def test_when_clinic_fails_porter_changes_no_clinic_input(monkeypatch):
    def failing(tree, interpreter, file, texts):
        return clinic_run.ClinicRun(file, "python3.11", error="clinic failed: Error in file 'tally.c'")

    monkeypatch.setattr(clinic_run, "run_clinic", failing)
    patch, report, result, _ = port_folder(FIXTURE)
    assert b"defining_class" not in patch and b"clinic_state()" not in patch
    assert not any(path.endswith(".c.h") for path in result.new_text)
    assert "porter changed no clinic input" in report and "`Tally_Type` (static-type) stays process-global" in report
