"""Each step through the library: a `noop` and a `fix` case per step, the step contract, the
error policy, and the edit machinery (overlaps, re-parse refusal)."""

from __future__ import annotations

import dataclasses

import pytest

from porter.model import Span
from porter.pipeline import scan
from porter.preproc import unbalanced_directive
from porter.rewrite import port as port_module
from porter.rewrite.edits import Edit, OverlappingEdits, apply_edits, drop_emptied_groups, drop_moot
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.layout import FileLayout
from porter.rewrite.plan import build_plan
from porter.rewrite.port import PASSES, port
from porter.rewrite.vocab import Applicability, PortStatus

HEADER = "#include <Python.h>\n"

SINGLE_PHASE = HEADER + """
static PyObject *Err;

typedef struct {
    PyObject_HEAD
    PyObject *item;
} Box;

static void
Box_dealloc(Box *self)
{
    Py_DECREF(self->item);
    PyObject_Del(self);
}

static PyTypeObject Box_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Box",
    .tp_basicsize = sizeof(Box),
    .tp_dealloc = (destructor)Box_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static PyObject *
make(PyObject *module, PyObject *arg)
{
    Box *b = PyObject_New(Box, &Box_Type);
    if (b == NULL) {
        PyErr_SetString(Err, "no box");
        return NULL;
    }
    b->item = Py_NewRef(arg);
    return (PyObject *)b;
}

static PyMethodDef methods[] = {{"make", make, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    if (PyType_Ready(&Box_Type) < 0)
        return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""

# Nothing global, no type: every step but the init and definition rewrites has nothing to do.
PLAIN = HEADER + """
static PyObject *
twice(PyObject *module, PyObject *arg)
{
    return PyNumber_Add(arg, arg);
}

static PyMethodDef methods[] = {{"twice", twice, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_m(void)
{
    return PyModule_Create(&def);
}
"""

# Init does work after creating the module: that work becomes exec.
PLAIN_EXEC = PLAIN.replace("    return PyModule_Create(&def);\n", """    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "answer", 42) < 0)
        return NULL;
    return m;
""")

MULTI_PHASE = HEADER + """
static int m_exec(PyObject *module) { return 0; }
static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, m_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_USED},
    {0, NULL},
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, .m_name = "m", .m_slots = slots};
PyMODINIT_FUNC PyInit_m(void) { return PyModuleDef_Init(&def); }
"""


# Err stays process-global (a static table names it), and init assigns it.
KEPT_AND_ASSIGNED = SINGLE_PHASE.replace("static PyObject *Err;", "static PyObject *Err;\nstatic PyObject **errors[] = {&Err};")

# Err is named only in a file-scope table that init reads: the table becomes init's local.
TABLED = SINGLE_PHASE.replace("static PyObject *Err;", "static PyObject *Err;\nstatic struct {PyObject **exc;} errors[] = {{&Err}, {NULL}};") \
    .replace('    Err = PyErr_NewException("m.Err", NULL, NULL);', '    *errors[0].exc = PyErr_NewException("m.Err", NULL, NULL);')


class InTree(str):
    """A source planned as in CPython's tree, with its clinic input open to change."""


# A type method whose wrapper Argument Clinic writes into the file itself (a block preset).
CLINIC = InTree(HEADER + """
typedef struct {
    PyObject_HEAD
    long n;
} Obj;

static PyTypeObject Obj_Type;
static PyObject *Err;

/*[clinic input]
module m
class m.Obj "Obj *" "&Obj_Type"
[clinic start generated code]*/
/*[clinic end generated code: output=0 input=0]*/

/*[clinic input]
m.Obj.check

    n: long
    /

Check n.
[clinic start generated code]*/

static PyObject *
m_Obj_check_impl(Obj *self, long n);

static PyObject *
m_Obj_check(Obj *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return m_Obj_check_impl(self, n);
}

static PyObject *
m_Obj_check_impl(Obj *self, long n)
/*[clinic end generated code: output=1 input=2]*/
{
    if (n < 0) {
        PyErr_SetString(Err, "negative");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Obj_methods[] = {{"check", (PyCFunction)m_Obj_check, METH_O, NULL}, {NULL, NULL, 0, NULL}};

static PyTypeObject Obj_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Obj",
    .tp_basicsize = sizeof(Obj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = Obj_methods,
};

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, NULL};

PyMODINIT_FUNC
PyInit_m(void)
{
    if (PyType_Ready(&Obj_Type) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) {
        return NULL;
    }
    Err = PyErr_NewException("m.Err", NULL, NULL);
    if (PyModule_AddObjectRef(m, "Obj", (PyObject *)&Obj_Type) < 0) {
        return NULL;
    }
    return m;
}
""")


def plan_of(c: str, unsafe: bool = False):
    analysis = scan([("m.c", c.encode())])
    (module,) = analysis.modules
    if isinstance(c, InTree):
        module = dataclasses.replace(module, regenerate_clinic=True)
    return build_plan(module, {"m.c": FileLayout(c.encode())}, unsafe)


def texts(result: StepResult) -> str:
    return "\n".join(e.text for e in result.edits)


STEPS = {step.id: step for step in PASSES}

CASES = [
    pytest.param("state-struct", PLAIN, lambda r: not r.edits, id="state-struct leaves a module without globals alone"),
    pytest.param("state-struct", SINGLE_PHASE,
                 lambda r: "PyObject *Err;" in texts(r) and any(e.text == "" for e in r.edits),
                 id="state-struct moves a global exception into the state struct"),
    pytest.param("heap-types", PLAIN, lambda r: not r.edits, id="heap-types has nothing to do without static types"),
    pytest.param("heap-types", SINGLE_PHASE, lambda r: "PyType_Spec Box_Type_spec" in texts(r),
                 id="heap-types turns a static type into a spec"),
    pytest.param("gc-support", PLAIN, lambda r: not r.edits, id="gc-support has nothing to do without types"),
    pytest.param("gc-support", SINGLE_PHASE,
                 lambda r: "Py_XDECREF" in texts(r) and "PyType_GenericAlloc(" in texts(r),
                 id="gc-support makes a type that owns an object take part in GC"),
    pytest.param("state-access", PLAIN, lambda r: not r.edits, id="state-access has nothing to do without globals"),
    pytest.param("state-access", SINGLE_PHASE,
                 lambda r: "m_state *state = get_m_state(module);" in texts(r) and "state->Err" in texts(r),
                 id="state-access gives a method its state and rewrites its uses"),
    pytest.param("clinic-input", CLINIC.replace("    n: long", "    cls: defining_class\n    n: long"),
                 lambda r: not r.edits, id="clinic-input leaves a method that has a defining class alone"),
    pytest.param("clinic-input", str(CLINIC), lambda r: not r.edits,
                 id="clinic-input changes no clinic input when porter cannot run clinic"),
    pytest.param("clinic-input", CLINIC, lambda r: "    cls: defining_class\n" in texts(r),
                 id="clinic-input gives a clinic method that needs state a defining class"),
    pytest.param("exec-slot", MULTI_PHASE, lambda r: not r.edits and r.failure is None,
                 id="exec-slot leaves a multi-phase module alone"),
    pytest.param("exec-slot", PLAIN_EXEC, lambda r: "static int\nm_exec(PyObject *m)" in texts(r),
                 id="exec-slot turns PyInit into an exec function"),
    pytest.param("exec-slot", PLAIN, lambda r: not r.edits and r.items and r.failure is None,
                 id="exec-slot writes no exec function when init only creates the module"),
    pytest.param("once-per-process", SINGLE_PHASE, lambda r: not r.edits,
                 id="once-per-process has nothing to do when every global moves"),
    pytest.param("once-per-process", KEPT_AND_ASSIGNED, lambda r: "if (Err == NULL) {" in texts(r),
                 id="once-per-process fills a global that stays process-global only on the first load"),
    pytest.param("local-table", SINGLE_PHASE, lambda r: not r.edits, id="local-table has nothing to do without tables"),
    pytest.param("local-table", TABLED, lambda r: "struct {PyObject **exc;} errors[] = {{&state->Err}, {NULL}};" in texts(r)
                 and any(e.text == "" for e in r.edits),
                 id="local-table moves a table of global addresses into the function that reads it"),
    pytest.param("local-table", TABLED.replace("static struct {", "static struct row {"), lambda r: not r.edits,
                 id="local-table leaves a table whose declaration defines a struct tag others may name"),
    pytest.param("module-def", MULTI_PHASE, lambda r: not r.edits, id="module-def leaves a multi-phase definition alone"),
    pytest.param("module-def", PLAIN, lambda r: "return PyModuleDef_Init(&def);" in texts(r),
                 id="module-def makes PyInit return the definition"),
    pytest.param("module-def", MULTI_PHASE.replace("    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},\n", ""),
                 lambda r: "{Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED}," in texts(r),
                 id="module-def adds the multiple-interpreters slot to a module that is multi-phase already"),
]


@pytest.mark.parametrize(("step", "source", "expected"), CASES)
def test_step(step, source, expected):
    result = STEPS[step].run(plan_of(source))
    assert expected(result), [(e.span, e.text) for e in result.edits]


def test_module_def_in_a_cpython_tree_names_that_versions_slots_plainly():
    """CPython's own modules build with one version's headers: no PY_VERSION_HEX guard, and no
    slot that version lacks (Py_mod_gil is 3.13+)."""
    for source in (PLAIN, MULTI_PHASE.replace("    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},\n", "")
                   .replace("    {Py_mod_gil, Py_MOD_GIL_USED},\n", "")):
        analysis = scan([("m.c", source.encode())])
        module = dataclasses.replace(analysis.modules[0], cpython_version=(3, 12))
        result = STEPS["module-def"].run(build_plan(module, {"m.c": FileLayout(source.encode())}, False))
        assert "{Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED}," in texts(result)
        assert "PY_VERSION_HEX" not in texts(result) and "Py_mod_gil" not in texts(result)
        module = dataclasses.replace(module, cpython_version=(3, 13))
        result = STEPS["module-def"].run(build_plan(module, {"m.c": FileLayout(source.encode())}, False))
        assert "{Py_mod_gil, Py_MOD_GIL_USED}," in texts(result) and "PY_VERSION_HEX" not in texts(result)


def test_every_step_has_a_noop_and_a_fix_case():
    assert {c.values[0] for c in CASES} == set(STEPS)
    assert all(sum(c.values[0] == s for c in CASES) >= 2 for s in STEPS)


def test_steps_keep_no_state_between_runs():
    plan = plan_of(SINGLE_PHASE)
    for step in PASSES:
        first, second = step.run(plan), step.run(plan)
        assert first.edits == second.edits and first.items == second.items
        assert not vars(step), f"{step.id} keeps {vars(step)}"


def test_every_edit_of_a_port_names_the_step_that_made_it_and_items_link_their_edits():
    result = port(scan([("m.c", SINGLE_PHASE.encode())]))
    (mp,) = result.modules
    assert mp.status is PortStatus.PORTED
    assert {e.step for e in mp.edits} <= set(STEPS)
    moved = next(it for it in mp.items if it.message.startswith("Err moved"))
    assert moved.edits and {e.step for e in moved.edits} >= {"state-struct", "state-access"}


# --------------------------------------------------------------------------- error policy


class _Exploding:
    id = "exploding"

    def run(self, plan):
        if plan.module.name == "bad":
            raise RuntimeError("boom")
        return StepResult()


class _Garbage:
    id = "garbage"

    def run(self, plan):
        out = Emitter(self.id, plan)
        out.insert(plan.module.init.file, plan.module.init.body.start + 1, "\n    }}} (((")
        return out.result


class _HalfAnIfGroup:
    id = "half-an-if-group"

    def run(self, plan):
        out = Emitter(self.id, plan)
        out.insert(plan.module.init.file, plan.module.init.body.start + 1, "\n#if FEATURE\n")
        return out.result


def _two_modules():
    bad = PLAIN.replace('"m"', '"bad"').replace("PyInit_m", "PyInit_bad")
    return scan([("good.c", PLAIN.encode()), ("bad.c", bad.encode())])


def test_a_failing_step_costs_its_module_only(monkeypatch):
    monkeypatch.setattr(port_module, "PASSES", (*PASSES, _Exploding()))
    result = port(_two_modules())
    status = {mp.module.name: mp for mp in result.modules}
    assert status["m"].status is PortStatus.PORTED and "good.c" in result.new_text
    assert status["bad"].status is PortStatus.FAILED and "bad.c" not in result.new_text
    assert "internal error in step exploding (RuntimeError: boom" in status["bad"].reason


def test_a_failing_plan_costs_its_module_only(monkeypatch):
    real = port_module.build_plan

    def planning(module, layouts, unsafe):
        if module.name == "bad":
            raise KeyError("nope")
        return real(module, layouts, unsafe)

    monkeypatch.setattr(port_module, "build_plan", planning)
    result = port(_two_modules())
    status = {mp.module.name: mp for mp in result.modules}
    assert status["m"].status is PortStatus.PORTED
    assert status["bad"].status is PortStatus.FAILED and "while planning" in status["bad"].reason


def test_a_rewrite_that_does_not_parse_is_refused(monkeypatch):
    monkeypatch.setattr(port_module, "PASSES", (*PASSES, _Garbage()))
    result = port(scan([("m.c", PLAIN_EXEC.encode())]))
    (mp,) = result.modules
    assert mp.status is PortStatus.FAILED and "does not parse" in mp.reason
    assert result.new_text == {}


def test_a_rewrite_that_unbalances_an_if_group_is_refused(monkeypatch):
    monkeypatch.setattr(port_module, "PASSES", (*PASSES, _HalfAnIfGroup()))
    result = port(scan([("m.c", PLAIN_EXEC.encode())]))
    (mp,) = result.modules
    assert mp.status is PortStatus.FAILED and "unmatched #if directive" in mp.reason
    assert result.new_text == {}


@pytest.mark.parametrize(("text", "at"), [
    (b"#if A\nx\n#else\ny\n#endif\n", None),
    (b"#ifdef A\n#if B\n#endif\n#endif\n", None),
    (b"x\n#else\ny\n#endif\n", 2),
    (b"#if A\nx\n#if B\n#endif\n", 0),
    (b"/* #endif */\n#define E \"#endif\"\n", None),
])
def test_unbalanced_directive_finds_the_first_unmatched_one(text, at):
    assert unbalanced_directive(text) == at


# --------------------------------------------------------------------------- edits


def edit(start, end, text="", step="s", order=0):
    return Edit("f.c", Span(start, end), text, step, order)


def test_overlapping_edits_raise_rather_than_guess():
    with pytest.raises(OverlappingEdits):
        apply_edits(b"abcdef", [edit(0, 3, "x"), edit(2, 4, "y")])


def test_insertions_at_one_offset_apply_in_order_and_touching_edits_do_not_overlap():
    out = apply_edits(b"abcdef", [edit(3, 3, "2", order=1), edit(3, 3, "1", order=0), edit(0, 3, "X"),
                                  edit(3, 6, "Y")])
    assert out == b"X12Y"


def test_touching_line_deletions_with_an_insertion_between_stay_apart():
    from porter.rewrite.edits import join_deleted_lines

    text = b"a\nb\nc\n"
    edits = [edit(0, 2), edit(2, 4), edit(2, 2, "X\n")]
    assert apply_edits(text, join_deleted_lines(text, edits)) == b"X\nc\n"


def test_edits_inside_a_deletion_are_moot():
    kept = drop_moot([edit(0, 10, ""), edit(2, 4, "x"), edit(10, 10, "after")])
    assert [(e.span.start, e.text) for e in kept] == [(0, ""), (10, "after")]


def test_edits_in_macro_bodies_porter_did_not_see_every_expansion_of_need_review():
    c = HEADER + """
static PyObject *Err;
#ifdef SOMETHING_UNKNOWN
#define FAIL(msg) PyErr_SetString(Err, msg)
#endif
#define FAIL2(msg) PyErr_SetString(Err, msg)
static PyObject *f(PyObject *module, PyObject *arg) { FAIL("a"); FAIL2("b"); return NULL; }
static PyMethodDef methods[] = {{"f", f, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""
    result = port(scan([("m.c", c.encode())]))
    (mp,) = result.modules
    src = c.encode()
    in_unsure = [e for e in mp.edits if src.rfind(b"#define FAIL(", 0, e.span.start) > src.rfind(b"#define FAIL2", 0,
                                                                                                   e.span.start)
                 and e.span.start < src.index(b"#endif")]
    assert in_unsure and all(e.applicability is Applicability.REVIEW for e in in_unsure)
    seen = [e for e in mp.edits if src.index(b"#define FAIL2") < e.span.start < src.index(b"static PyObject *f")]
    assert seen and all(e.applicability is Applicability.SAFE for e in seen)


GROUPED = b"a;\n#ifdef PY3K\nstatic int d;\n#endif\nb;\n#if X\nc;\n#else\ne;\n#endif\n"


def _groups(text):
    from porter.preproc import preprocess

    return [(c.span, [b.body for b in c.branches]) for c in preprocess("f.c", text).conditionals]


def test_a_group_the_edits_empty_goes_with_its_directives():
    start = GROUPED.index(b"static")
    kept = drop_emptied_groups(GROUPED, [edit(start, GROUPED.index(b"#endif"))], _groups(GROUPED))
    assert apply_edits(GROUPED, kept) == b"a;\nb;\n#if X\nc;\n#else\ne;\n#endif\n"


@pytest.mark.parametrize("edits", [
    [],  # untouched groups are not the port's to remove, even if blank
    [edit(GROUPED.index(b"c;"), GROUPED.index(b"c;") + 3)],  # the #else branch still holds code
    [edit(GROUPED.index(b"static"), GROUPED.index(b"#endif")),
     edit(GROUPED.index(b"static"), GROUPED.index(b"static"), "int x;\n", order=1)],  # written inside
])
def test_a_group_with_anything_left_in_it_stays(edits):
    out = apply_edits(GROUPED, drop_emptied_groups(GROUPED, edits, _groups(GROUPED)))
    assert out.count(b"#endif") == 2


def test_a_module_method_declared_with_another_first_parameter_type_passes_it_cast():
    """`localcontext(PyTypeObject *type, ...)` in _decimal's module table, cast there."""
    source = SINGLE_PHASE.replace("static PyMethodDef methods[] = {{\"make\", make, METH_O, NULL},",
                                  "static PyObject *\nfail(PyTypeObject *type, PyObject *arg)\n{\n"
                                  "    PyErr_SetString(Err, \"failed\");\n    return NULL;\n}\n\n"
                                  "static PyMethodDef methods[] = {{\"make\", make, METH_O, NULL},\n"
                                  "    {\"fail\", (PyCFunction)fail, METH_O, NULL},")
    result = STEPS["state-access"].run(plan_of(source))
    assert "m_state *state = get_m_state((PyObject *)type);" in texts(result)
    assert "m_state *state = get_m_state(module);" in texts(result)
