"""Porting rules shown on small inline modules: one behaviour per test, in plain C."""

from __future__ import annotations

from pathlib import Path

import pytest

from porter.compile_check import check_module, find_toolchain
from porter.diff import unified_diff
from porter.model import Companions, GlobalKind
from porter.pipeline import port_files

HEADER = "#include <Python.h>\n"
INIT = """
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
%s
    return m;
}
"""


def port(c: str, unsafe: bool = False):
    result = port_files([("m.c", c.encode())], unsafe=unsafe)
    (mp,) = result.modules
    text = result.new_text.get("m.c", c.encode()).decode()
    return mp, text


def assert_compiles(mp, c: str, text: str) -> None:
    """The port of `m.c` compiles with no diagnostic the original did not have."""
    toolchain = find_toolchain()
    if isinstance(toolchain, str):
        pytest.skip(toolchain)
    checked = check_module(mp.module, {"m.c": c.encode()}, {"m.c": text.encode()}, toolchain, None)
    assert checked.compiled and checked.ok, checked.reason()


ONE_METHOD = """static PyMethodDef one_method[] = {{"%s", %s, %s, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, one_method};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""


def plain_init(flags: str) -> str:
    """One function `f` (with `flags`) in the method table, the definition, and an init that
    only creates the module."""
    return ('static PyMethodDef one_method[] = {{"f", f, ' + flags + ', NULL}, {NULL, NULL, 0, NULL}};\n'
            'static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, one_method};\n'
            "PyMODINIT_FUNC\nPyInit_m(void)\n{\n    return PyModule_Create(&def);\n}\n")


def with_method(functions: str, name: str, flags: str) -> str:
    """A module with the global exception Err, `functions`, and `name` as its one method."""
    return HEADER + "static PyObject *Err;\n" + functions + ONE_METHOD % (name, name, flags)


CONDITIONAL_TYPE = HEADER + """
typedef struct { PyObject_HEAD } Obj;
static PyTypeObject T = {
    PyVarObject_HEAD_INIT(NULL, 0)
    "m.T",
    sizeof(Obj),
    0,
#ifdef SOME_BUILD_OPTION
    0, 0,
#endif
};
""" + INIT % "    if (PyType_Ready(&T) < 0) return NULL;\n    Py_INCREF(&T);\n    PyModule_AddObject(m, \"T\", (PyObject *)&T);"


def test_a_type_whose_positional_slots_an_unknown_if_may_shift_stays_static():
    mp, text = port(CONDITIONAL_TYPE)
    assert mp.status == "ported"
    assert "PyType_Spec" not in text
    assert any(not it.done and "T stays global" in it.message for it in mp.items)


def test_with_unsafe_it_is_converted_and_the_report_says_so():
    mp, text = port(CONDITIONAL_TYPE, unsafe=True)
    assert "static PyType_Spec T_spec" in text
    assert any(it.applicability.value == "unsafe" for it in mp.items)


def test_addobject_of_a_moved_global_becomes_addobjectref_without_the_incref():
    c = HEADER + "static PyObject *Err;\n" + INIT % (
        '    Err = PyErr_NewException("m.Err", NULL, NULL);\n'
        '    Py_INCREF(Err);\n    PyModule_AddObject(m, "Err", Err);')
    _, text = port(c)
    assert 'PyModule_AddObjectRef(m, "Err", state->Err)' in text
    assert "Py_INCREF" not in text


def test_a_module_with_nothing_to_move_gets_no_state():
    _, text = port(HEADER + INIT % "")
    assert ".m_size = 0" in text and "_state" not in text
    assert "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED" in text


def test_the_multiple_interpreters_slot_is_guarded_for_312_and_the_limited_api():
    _, text = port(HEADER + INIT % "")
    assert "#if PY_VERSION_HEX >= 0x030C0000 && (!defined(Py_LIMITED_API) || Py_LIMITED_API >= 0x030C0000)" in text
    assert "#if PY_VERSION_HEX >= 0x030D0000" in text


def test_a_callback_with_a_fixed_signature_keeps_its_global_and_weakens_the_claim():
    c = HEADER + """
static int mode;
static void on_exit_hook(void) { mode = 0; }
static PyObject *setmode(PyObject *self, PyObject *arg) { mode = 1; Py_RETURN_NONE; }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"setmode", setmode, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
        "    Py_AtExit(on_exit_hook);"
    mp, text = port(c)
    assert "static int mode;" in text
    # `mode` is C data shared by interpreters: a shared GIL at most. The exit hook itself is
    # registered on the first load only, as init registered it once per process.
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
    assert any(r.startswith("mode ") for r in mp.posture.reasons)
    assert "if (m_first_load()) {\n        Py_AtExit(on_exit_hook);\n    }" in text


def test_an_exit_hook_that_reads_an_object_keeps_it_and_the_claim_weakens_for_the_object():
    c = HEADER + """
static PyObject *last;
static void on_exit_hook(void) { Py_CLEAR(last); }
static PyObject *keep(PyObject *self, PyObject *arg) { Py_XSETREF(last, Py_NewRef(arg)); Py_RETURN_NONE; }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"keep", keep, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
        "    Py_AtExit(on_exit_hook);"
    mp, text = port(c)
    assert "static PyObject *last;" in text and "if (m_first_load()) {" in text
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED"
    assert [r.split(" ")[0] for r in mp.posture.reasons] == ["last"]


def test_a_callback_keeping_both_a_global_and_a_function_static_keeps_both():
    """Globals and function statics are planned together (their keys sort side by side)."""
    c = HEADER + """
static int mode;
static void on_exit_hook(void) { static int calls; calls++; mode = calls; }
static PyObject *setmode(PyObject *self, PyObject *arg) { mode = 1; Py_RETURN_NONE; }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"setmode", setmode, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
        "    Py_AtExit(on_exit_hook);"
    mp, text = port(c)
    assert mp.status.value == "ported" and "static int mode;" in text and "static int calls;" in text
    assert {key for key in mp.kept} >= {(None, "mode")}


def test_a_type_named_in_a_static_local_table_walked_by_pointer_stays_static_and_the_rest_moves():
    """The table's own address is taken (a cursor walks it): it must stay `static`, so the
    rows stay constants."""
    c = HEADER + """
typedef struct { PyObject_HEAD } Obj;
static PyTypeObject A = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.A", .tp_basicsize = sizeof(Obj)};
static PyTypeObject B = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.B", .tp_basicsize = sizeof(Obj)};
static PyObject *Err;
""" + INIT % """    static PyTypeObject *all_types[] = {&A, NULL};
    for (PyTypeObject **cursor = all_types; *cursor != NULL; cursor++) {
        if (PyType_Ready(*cursor) < 0) return NULL;
    }
    if (PyType_Ready(&B) < 0) return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);"""
    mp, text = port(c)
    assert "static PyTypeObject *all_types[] = {&A, NULL};" in text and "static PyTypeObject A = {" in text
    assert "B_spec" in text and "state->Err" in text
    (reason,) = [it for it in mp.items if it.code == "used-in-static-initializer"]
    assert reason.subject == "A" and "all_types" in reason.message


TWO_FAILS_A = HEADER + """extern PyObject *Err;
%s
static PyObject *fail(void) { PyErr_SetString(Err, "a"); return NULL; }
PyObject *from_a(void) { return %s; }
"""
TWO_FAILS_M = HEADER + """extern PyObject *Err;
PyObject *from_a(void);
static PyObject *fail(void) { PyErr_SetString(Err, "b"); return NULL; }
static PyObject *go(PyObject *m, PyObject *arg) { return arg == Py_None ? from_a() : fail(); }
PyObject *Err;
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"go", go, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
    '    Err = PyErr_NewException("m.Err", NULL, NULL);'


def test_two_static_helpers_of_one_name_in_two_files_are_two_functions():
    """A function is (file, name): each file's `fail` gets the state, and each file's calls
    pass it to the `fail` that file sees."""
    result = port_files([("a.c", (TWO_FAILS_A % ("", "fail()")).encode()), ("m.c", TWO_FAILS_M.encode())])
    (mp,) = result.modules
    assert not mp.kept
    for path in ("a.c", "m.c"):
        text = result.new_text[path]
        assert b"static PyObject *fail(m_state *state)" in text and b"fail(state)" in text
    assert b"from_a(state)" in result.new_text["m.c"]


def test_static_helpers_of_one_name_that_a_macro_calls_stay_one_ambiguous_name():
    """A macro body's call means whichever definition the expanding file sees: porter does not
    resolve macro bodies per expansion, so such helpers keep their signatures."""
    result = port_files([("a.c", (TWO_FAILS_A % ("#define FAIL() fail()", "FAIL()")).encode()), ("m.c", TWO_FAILS_M.encode())])
    (mp,) = result.modules
    assert {g[1] for g in mp.kept} == {"Err"}
    for text in result.new_text.values():
        assert b"static PyObject *fail(void)" in text and b"fail(state" not in text


def test_each_type_s_slot_is_the_function_its_own_file_defines():
    """pyaudio: every file defines its own `static void dealloc(...)` for its type's tp_dealloc;
    each one must release its heap type."""
    def part(n: str) -> str:
        return HEADER + f"""typedef struct {{ PyObject_HEAD int x; }} {n}Obj;
static void dealloc({n}Obj *self) {{ Py_TYPE(self)->tp_free((PyObject *)self); }}
PyTypeObject {n}Type = {{PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.{n}", .tp_basicsize = sizeof({n}Obj),
    .tp_dealloc = (destructor)dealloc, .tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = PyType_GenericNew}};
"""
    m = HEADER + "extern PyTypeObject AType;\nextern PyTypeObject BType;\n" + INIT % """    if (PyType_Ready(&AType) < 0 || PyType_Ready(&BType) < 0) return NULL;
    Py_INCREF(&AType);
    PyModule_AddObject(m, "A", (PyObject *)&AType);
    Py_INCREF(&BType);
    PyModule_AddObject(m, "B", (PyObject *)&BType);"""
    result = port_files([("a.c", part("A").encode()), ("b.c", part("B").encode()), ("m.c", m.encode())])
    (mp,) = result.modules
    assert not [it for it in mp.items if it.code == "dealloc-not-editable"]
    for path in ("a.c", "b.c"):
        assert b"Py_DECREF(tp)" in result.new_text[path], result.new_text[path].decode()


def test_a_static_function_named_like_an_extern_one_is_its_own_file_s():
    """Callers in the file with the `static` definition call it; the other files call the
    extern one: only the extern one needs the state here."""
    a = HEADER + """extern PyObject *Err;
static int check(int x) { return x > 0; }
int use_a(int x) { return check(x) ? 0 : -1; }
"""
    b = HEADER + """extern PyObject *Err;
int check(int x) { if (x < 0) { PyErr_SetString(Err, "negative"); return 0; } return 1; }
"""
    c = HEADER + """int check(int x);
int use_a(int x);
static PyObject *go(PyObject *m, PyObject *arg) {
    long x = PyLong_AsLong(arg);
    if (!check((int)x) || use_a((int)x) < 0) return NULL;
    Py_RETURN_NONE;
}
PyObject *Err;
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"go", go, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
        '    Err = PyErr_NewException("m.Err", NULL, NULL);'
    result = port_files([("a.c", a.encode()), ("b.c", b.encode()), ("m.c", c.encode())])
    (mp,) = result.modules
    assert not mp.kept
    assert b"static int check(int x)" in result.new_text.get("a.c", a.encode())
    assert b"int check(m_state *state, int x)" in result.new_text["b.c"]
    assert b"check(state, (int)x)" in result.new_text["m.c"] and b"use_a((int)x)" in result.new_text["m.c"]


TYPE_IN_C_FILE = """#include <Python.h>
#include "lib.h"
%s
static bytes8 raw = {{1, 2, 3}};
desc_t d = {3, NULL};
PyObject *Err;
static PyObject *go(PyObject *m, PyObject *arg) { return lib_len(&d); }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"go", go, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
    '    d.p = &raw.b;\n    Err = PyErr_NewException("m.Err", NULL, NULL);'
LIB_H = "typedef struct { int n; void *p; } desc_t;\nPyObject *lib_len(desc_t *d);\n"
LIB_C = """#include <Python.h>
#include "lib.h"
extern PyObject *Err;
PyObject *lib_len(desc_t *d) { if (d->p == NULL) { PyErr_SetString(Err, "empty"); return NULL; }
    return PyLong_FromLong(d->n); }
"""


@pytest.mark.parametrize(("definition", "moves"), [
    ("typedef union { char b[8]; long l; } bytes8;", True),
    ("#define EIGHT 8\ntypedef union { char b[EIGHT]; long l; } bytes8;", False),
    ("#ifdef HAVE_LONG\ntypedef union { char b[8]; long l; } bytes8;\n#else\n"
     "typedef union { char b[8]; int i; } bytes8;\n#endif", False),
], ids=["plain: moves into the state header", "names a macro of the .c file: stays global",
        "under #if: stays global"])
def test_a_field_type_only_the_init_file_defines_moves_into_the_state_header(definition, moves):
    result = port_files([("m.c", (TYPE_IN_C_FILE % definition).encode()), ("lib.h", LIB_H.encode()),
                         ("lib.c", LIB_C.encode())])
    (mp,) = result.modules
    assert ((None, "raw") not in mp.kept) is moves
    header = result.new_text["lib.h"].decode()
    assert ("bytes8 raw;" in header and header.index("} bytes8;") < header.index("bytes8 raw;")) is moves
    if not moves:
        assert [it.code for it in mp.items if it.subject == "raw"] == ["type-declared-late"]


@pytest.mark.parametrize(("value", "converts"), [
    ('"m.dirs"', True), ('"dirs"', True), ("names.dirs", False), ("name_of(2)", False),
], ids=["a dotted string literal", "a plain string literal", "a field read", "a call"])
def test_a_slot_init_assigns_converts_when_the_value_is_a_constant(value, converts):
    """mercurial's dirs.c fills `dirsType` field by field at init: a string literal is a
    constant whatever it spells."""
    c = HEADER + """typedef struct { PyObject_HEAD } Obj;
struct names_t { const char *dirs; };
static struct names_t names = {"m.dirs"};
static const char *name_of(int i) { return i ? "m.dirs" : "m.other"; }
static PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0)};
""" + INIT % f"""    T.tp_name = {value};
    T.tp_basicsize = sizeof(Obj);
    T.tp_flags = Py_TPFLAGS_DEFAULT;
    if (PyType_Ready(&T) < 0) return NULL;"""
    mp, text = port(c)
    assert ("T_spec" in text) is converts
    if not converts:
        assert [it.code for it in mp.items if it.subject == "T"] == ["type-runtime-slot"]


def test_a_type_defined_under_an_unknown_condition_is_made_under_it():
    c = HEADER + """
typedef struct { PyObject_HEAD } Obj;
#ifdef HAVE_LEVEL2
static PyTypeObject Entry = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.Entry", .tp_basicsize = sizeof(Obj)};
#endif
""" + INIT % """#ifdef HAVE_LEVEL2
    if (PyType_Ready(&Entry) < 0) return NULL;
    PyModule_AddObjectRef(m, "Entry", (PyObject *)&Entry);
#endif"""
    mp, text = port(c)
    made = text.index("PyType_FromModuleAndSpec(m, &Entry_spec")
    assert text.rfind("#if defined(HAVE_LEVEL2)", 0, made) > text.rfind("#endif", 0, made)


def test_an_empty_specifier_macro_before_a_type_goes_with_its_declaration():
    c = HEADER + """#define INTERNAL
typedef struct { PyObject_HEAD } Obj;
INTERNAL PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.T", .tp_basicsize = sizeof(Obj)};
""" + INIT % '    if (PyType_Ready(&T) < 0) return NULL;'
    mp, text = port(c)
    assert "T_spec" in text and "INTERNAL static" not in text and "INTERNAL #" not in text
    assert "\nINTERNAL" not in text.split("#define INTERNAL", 1)[1]


@pytest.mark.parametrize("order", [1, -1])
def test_method_tables_of_one_name_in_two_files_are_told_apart(order):
    """`static PyMethodDef methods[]` in each file: a type's `tp_methods = methods` is its own file's."""
    t = HEADER + """extern PyObject *Err;
typedef struct { PyObject_HEAD } Obj;
static PyObject *poke(PyObject *self, PyObject *arg) { PyErr_SetString(Err, "poked"); return NULL; }
static PyMethodDef methods[] = {{"poke", poke, METH_O, NULL}, {NULL, NULL, 0, NULL}};
PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.T", .tp_basicsize = sizeof(Obj), .tp_methods = methods};
"""
    m = HEADER + """extern PyTypeObject T;
PyObject *Err;
static PyObject *ping(PyObject *module, PyObject *arg) { Py_RETURN_NONE; }
static PyMethodDef methods[] = {{"ping", ping, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    if (PyType_Ready(&T) < 0) return NULL;
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""
    result = port_files([("t.c", t.encode()), ("m.c", m.encode())][::order])
    (mp,) = result.modules
    assert not mp.kept, mp.kept
    poke = result.new_text["t.c"].split(b"poke(PyObject *self", 1)[1].split(b"}", 1)[0]
    assert b"_state_by_type(Py_TYPE(self))" in poke and b"PyErr_SetString(state->Err" in poke


def test_with_its_own_state_struct_a_multifile_module_gets_the_accessors_after_it():
    api = "#ifndef API_H\n#define API_H\n#include <Python.h>\nPyObject *helper(void);\n#endif\n"
    state = ('#ifndef STATE_H\n#define STATE_H\n#include "api.h"\n'
             "typedef struct { PyObject *Base; } m_state;\n#endif\n")
    a = ('#include "state.h"\nextern PyObject *Err;\n'
         'PyObject *helper(void) { PyErr_SetString(Err, "x"); return NULL; }\n')
    m = '#include "state.h"\nPyObject *Err;\n' + """
static PyObject *go(PyObject *module, PyObject *arg) { return helper(); }
static PyMethodDef methods[] = {{"go", go, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, sizeof(m_state), methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""
    result = port_files([("api.h", api.encode()), ("state.h", state.encode()), ("a.c", a.encode()),
                         ("m.c", m.encode())])
    (mp,) = result.modules
    header = result.new_text["state.h"]
    assert header.index(b"} m_state;") < header.index(b"get_m_state(PyObject *module)")
    assert b"get_m_state" not in result.new_text.get("api.h", b"")


SHADOWING = HEADER + """
static long head;
#define SHOW_HEAD() printf_like("head %ld", (long)head)
static void printf_like(const char *f, long v) { (void)f; (void)v; }
static PyObject *peek(PyObject *m, PyObject *arg) { long head = PyLong_AsLong(arg); SHOW_HEAD(); Py_RETURN_NONE; }
static PyObject *bump(PyObject *m, PyObject *arg) { head++; BUMP_EXTRA Py_RETURN_NONE; }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"peek", peek, METH_O, NULL}, {"bump", bump, METH_O, NULL}, '
                                             '{NULL, NULL, 0, NULL}}') % ""


def test_a_macro_whose_name_means_a_local_wherever_it_expands_is_left_alone():
    mp, text = port(SHADOWING.replace("BUMP_EXTRA", ""))
    assert "#define SHOW_HEAD() printf_like(\"head %ld\", (long)head)" in text
    assert "state->head++" in text and not mp.kept


def test_a_macro_whose_name_means_the_global_at_one_site_and_a_local_at_another_keeps_it():
    mp, text = port(SHADOWING.replace("BUMP_EXTRA", "SHOW_HEAD();"))
    assert "static long head;" in text and "state->head" not in text
    assert [r.code for r in mp.kept.values()] == ["macro-name-shadowed"]


def test_a_macro_calling_a_helper_in_a_callback_keeps_what_the_helper_needs_global():
    """The callback cannot take the state, so neither can the helper its macro calls."""
    c = HEADER + """
static PyObject *Err;
static long calls;
static int note(void) { calls++; return 0; }
#define BEGIN_CALLBACK() (void)note()
static void on_event(int code) { BEGIN_CALLBACK(); (void)code; }
static void (*hook)(int) = NULL;
static PyObject *fail(PyObject *m, PyObject *arg) { PyErr_SetString(Err, "no"); return NULL; }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"fail", fail, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % \
        '    hook = on_event;\n    Err = PyErr_NewException("m.Err", NULL, NULL);'
    mp, text = port(c)
    assert mp.status.value == "ported", mp.reason
    assert "static long calls;" in text and "state->Err" in text
    assert [r.code for k, r in mp.kept.items() if k[1] == "calls"] == ["unreachable-function"]


def test_the_patch_of_a_port_is_stable_across_runs():
    c = HEADER + "static long calls;\nstatic PyObject *bump(PyObject *self, PyObject *a) { calls++; return PyLong_FromLong(calls); }\n" + \
        INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"bump", bump, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}}') % ""
    first = port(c)[1]
    assert first == port(c)[1]
    assert unified_diff("m.c", c.encode(), first.encode())


MODULE_DESCRIPTOR_TYPE = HEADER + """
typedef struct { PyObject_HEAD PyObject *modname; } Obj;
static PyObject *get_module(PyObject *self, void *c) { return Py_NewRef(((Obj *)self)->modname); }
static PyGetSetDef T_getset[] = {{"__module__", get_module, NULL, NULL, NULL}, {NULL}};
static PyTypeObject T = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pkg." "Proxy",
    .tp_basicsize = sizeof(Obj),
    .tp_getset = T_getset,
};
""" + INIT % "    if (PyType_Ready(&T) < 0) return NULL;\n    Py_INCREF(&T);\n    PyModule_AddObject(m, \"Proxy\", (PyObject *)&T);"


def test_a_module_descriptor_type_converts_and_the_report_asks_for_review():
    mp, text = port(MODULE_DESCRIPTOR_TYPE)
    assert "static PyType_Spec T_spec" in text
    assert '"pkg")' in text  # the module name the static type answered, from joined literals
    assert any("review: T.__dict__['__module__']" in it.message for it in mp.items)


def test_a_getattro_given_through_a_cast_is_called_through_the_cast():
    """`(getattrofunc)f` called as `(getattrofunc)f(self, name)` casts the result (GCC 14 rejects it)."""
    c = MODULE_DESCRIPTOR_TYPE.replace(
        "    .tp_getset = T_getset,",
        "    .tp_getset = T_getset,\n    .tp_getattro = (getattrofunc)T_getattro,").replace(
        "static PyTypeObject T = {",
        "static PyObject *T_getattro(Obj *self, PyObject *name) { return PyObject_GenericGetAttr((PyObject *)self, name); }\n"
        "static PyTypeObject T = {")
    _, text = port(c)
    assert "T_getattro2(PyObject *self, PyObject *name)" in text  # the wrapper's own name
    assert "return T_getattro((Obj *)self, name);" in text


def test_python_code_reading_the_module_descriptor_keeps_the_type_static():
    reader = b"from pkg import Proxy\ndescr = Proxy.__dict__['__module__']\n"
    result = port_files([("m.c", MODULE_DESCRIPTOR_TYPE.encode())],
                        companions=Companions(python_files=(("pkg/util.py", reader),)))
    (mp,) = result.modules
    text = result.new_text.get("m.c", b"").decode()
    assert "PyType_Spec" not in text
    assert any(not it.done and "pkg/util.py:2 reads Proxy.__dict__['__module__']" in it.message
               for it in mp.items)


def holder_module(allocation: str, extra: str = "") -> str:
    """A non-GC type whose dealloc releases an object field, allocated by `allocation`."""
    return HEADER + extra + """
typedef struct { PyObject_HEAD PyObject *item; PyObject *borrowed; } Holder;
static PyTypeObject HolderType;
static void Holder_dealloc(Holder *self) { Py_DECREF(self->item); PyObject_DEL(self); }
static PyObject *
make(PyObject *module, PyObject *item)
{
    Holder *h = %s;
    if (h == NULL) return NULL;
    h->item = Py_NewRef(item);
    h->borrowed = item;
    return (PyObject *)h;
}
static PyTypeObject HolderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Holder",
    .tp_basicsize = sizeof(Holder),
    .tp_dealloc = (destructor)Holder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};
static PyMethodDef holder_methods[] = {{"make", make, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, holder_methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    if (PyType_Ready(&HolderType) < 0)
        return NULL;
    return PyModule_Create(&def);
}
""" % allocation


def test_a_type_whose_dealloc_releases_objects_gets_gc_and_every_allocation_site_follows():
    mp, text = port(holder_module("PyObject_NEW(Holder, &HolderType)"))
    assert mp.status == "ported"
    assert "Py_TPFLAGS_HAVE_GC" in text and "Py_VISIT(self->item);" in text
    assert "borrowed);" not in text.split("Holder_traverse")[1].split("}")[0]  # never visited
    assert "(Holder *)PyType_GenericAlloc(state->HolderType, 0)" in text and "PyObject_NEW(" not in text
    dealloc = text.split("Holder_dealloc(Holder *self) {")[1].split("}")[0]
    assert "PyObject_GC_UnTrack(self);" in dealloc and "Py_XDECREF(self->item)" in dealloc
    assert "tp->tp_free(self)" in dealloc and "PyObject_DEL" not in dealloc


def test_an_allocation_porter_cannot_rewrite_leaves_the_type_without_gc_and_says_where():
    for allocation, extra, why in (
            ("F(PyObject_New)(Holder, &HolderType)", "#define F(name) name\n", "through F(PyObject_New)(...) at m.c:"),
            ("PyObject_New(Holder, Py_TYPE(module))", "", "allocates a Holder through PyObject_New(...) without naming HolderType")):
        mp, text = port(holder_module(allocation, extra))
        assert mp.status == "ported" and "Py_TPFLAGS_HAVE_GC" not in text
        assert any(not it.done and why in it.message for it in mp.items), [it.message for it in mp.items]


def test_argument_clinic_methoddef_rows_give_their_wrappers_the_method_role():
    c = HEADER + """
static PyObject *Err;
static PyObject *
m_poke_impl(PyObject *module, PyObject *arg)
{
    PyErr_SetObject(Err, arg);
    return NULL;
}
static PyObject *
m_poke(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return m_poke_impl(module, args[0]);
}
#define M_POKE_METHODDEF    \\
    {"poke", _PyCFunction_CAST(m_poke), METH_FASTCALL, NULL},
static PyMethodDef clinic_methods[] = {
    M_POKE_METHODDEF
    {NULL, NULL}
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, clinic_methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""
    mp, text = port(c)
    assert mp.status == "ported" and not any(not it.done for it in mp.items), [it.message for it in mp.items]
    assert "PyErr_SetObject(state->Err, arg);" in text


def test_init_returning_the_module_it_found_loses_that_shortcut():
    c = HEADER + """
static PyObject *Err;
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m;
    if ((m = PyState_FindModule(&def)) != NULL) {
        Py_INCREF(m);
        return m;
    }
    m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    return m;
}
"""
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "PyState_FindModule" not in text and "Py_INCREF(m)" not in text
    assert any("each import now makes its own module" in it.message for it in mp.items)


def test_state_needed_in_files_without_a_shared_header_goes_to_the_header_most_include():
    header = b"extern PyObject *Err;\n"
    main = (HEADER + '#include "m.h"\nPyObject *Err;\nPyObject *raise_it(PyObject *module, PyObject *arg);\n'
            'static PyMethodDef methods[] = {{"raise_it", raise_it, METH_O, NULL}, {NULL, NULL, 0, NULL}};\n'
            'static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};\n'
            'PyMODINIT_FUNC\nPyInit_m(void)\n{\n    PyObject *m = PyModule_Create(&def);\n'
            '    if (m == NULL)\n        return NULL;\n    Err = PyErr_NewException("m.Err", NULL, NULL);\n'
            '    return m;\n}\n').encode()
    other = (HEADER + "extern PyObject *Err;\n"
             "PyObject *raise_it(PyObject *module, PyObject *arg)\n{\n"
             "    PyErr_SetObject(Err, arg);\n    return NULL;\n}\n").encode()
    result = port_files([("m.c", main), ("m.h", header), ("other.c", other)])
    (mp,) = result.modules
    assert mp.status == "ported", mp.reason
    assert b'#include "m.h"\n' in result.new_text["other.c"]
    assert b"typedef struct {" in result.new_text["m.h"]
    assert b"PyErr_SetObject(state->Err, arg);" in result.new_text["other.c"]


HELPER_MODULE = with_method("""
static int
check(PyObject *o)
{
    if (o == Py_None) {
        PyErr_SetString(Err, "None");
        return 0;
    }
    return 1;
}
static PyObject *
run(PyObject *module, PyObject *o)
{
%s
    Py_RETURN_NONE;
}
""", "run", "METH_O")


def test_a_helper_called_from_a_macro_body_gets_the_state_where_the_macro_expands():
    mp, text = port(HELPER_MODULE % "#define CHECK(x) if (!check(x)) return NULL\n    CHECK(o);")
    assert mp.status == "ported", mp.reason
    assert "#define CHECK(x) if (!check(state, x)) return NULL" in text
    assert "state = get_m_state(module);" in text


def test_a_helper_called_in_an_unread_if_branch_gets_the_state_there_too():
    body = ("    if (o == NULL) { return NULL; } else {\n#ifdef SOME_OPTION\n"
            "    if (!check(o)) {\n#else\n    if (!check(o) || 0) {\n#endif\n        return NULL;\n    }\n    }")
    mp, text = port(HELPER_MODULE % body)
    assert mp.status == "ported", mp.reason
    assert "if (!check(state, o)) {" in text and "if (!check(state, o) || 0) {" in text


def test_a_type_named_without_a_module_is_made_as_builtins_and_gets_its_bare_tp_name_back():
    c = CONDITIONAL_TYPE.replace('"m.T"', '"T"').replace("#ifdef SOME_BUILD_OPTION\n    0, 0,\n#endif\n", "")
    mp, text = port(c)
    assert '.name = "builtins.T"' in text and '->tp_name = "T";' in text
    assert any("__module__ stays 'builtins'" in it.message for it in mp.items)


def test_under_the_limited_api_a_type_named_without_a_module_gets_the_modules_name_and_the_report_says_so():
    c = CONDITIONAL_TYPE.replace('"m.T"', '"T"').replace("#ifdef SOME_BUILD_OPTION\n    0, 0,\n#endif\n", "")
    mp, text = port("#define Py_LIMITED_API 0x030D0000\n" + c)
    assert '.name = "m.T"' in text and "tp_name =" not in text
    assert any("__module__ is now 'm' instead of 'builtins'" in it.message for it in mp.items)


def test_a_macro_defined_only_under_an_unknown_condition_is_reported_not_edited():
    header = b"#define CHECK_DEBUG(x) check(x)\n"
    c = (HELPER_MODULE % "    if (!check(o)) return NULL;").replace(
        HEADER, HEADER + "#ifdef DEBUG_CHECKS\n#include \"debug.h\"\n#endif\n")
    result = port_files([("m.c", c.encode()), ("debug.h", header)])
    (mp,) = result.modules
    assert mp.status == "ported", mp.reason
    assert "debug.h" not in result.new_text  # left as it was
    assert any(not it.done and "macro CHECK_DEBUG (only under defined(DEBUG_CHECKS))" in it.message
               for it in mp.items), [it.message for it in mp.items]


def test_with_unsafe_the_descriptor_stays_in_the_dict_and_the_report_points_at_module_readers():
    python = [("pkg/util.py", b"from pkg import Proxy\ndescr = Proxy.__dict__['__module__']\n"),
              ("pkg/names.py", b"def name(ob):\n    return getattr(ob, '__module__', '?') + '.x'\n"),
              ("tests/test_names.py", b"assert getattr(Proxy, '__module__')\n")]
    result = port_files([("m.c", MODULE_DESCRIPTOR_TYPE.encode())], unsafe=True,
                        companions=Companions(python_files=tuple(python)))
    (mp,) = result.modules
    text = result.new_text["m.c"].decode()
    assert "static PyType_Spec T_spec" in text and "_getattro" not in text
    item = next(it for it in mp.items if "keeps its __module__ descriptor" in it.message)
    assert not item.done and "pkg/names.py:2 getattr(ob, '__module__')" in item.message
    assert "test_names" not in item.message


def test_a_method_whose_module_parameter_is_py_unused_gets_it_back():
    c = with_method("""
static PyObject *
fail(PyObject *Py_UNUSED(module), PyObject *arg)
{
    PyErr_SetObject(Err, arg);
    return NULL;
}
""", "fail", "METH_O")
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "fail(PyObject *module, PyObject *arg)" in text
    assert "m_state *state = get_m_state(module);" in text


def test_a_pyarg_converter_reads_the_state_its_caller_publishes_around_the_parse():
    c = with_method("""
static int
positive(PyObject *o, long *out)
{
    *out = PyLong_AsLong(o);
    if (*out <= 0) {
        PyErr_SetString(Err, "not positive");
        return 0;
    }
    return 1;
}
static PyObject *
take(PyObject *module, PyObject *args)
{
    long n;
    if (!PyArg_ParseTuple(args, "O&", positive, &n))
        return NULL;
    return PyLong_FromLong(n);
}
""", "take", "METH_VARARGS")
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "m_state *state = m_callback_state;" in text
    assert ("    m_callback_state = state;\n"
            "    if (!PyArg_ParseTuple(args, \"O&\", positive, &n)) {\n"
            "        m_callback_state = previous_m_callback_state;\n"
            "        return NULL;\n"
            "    }\n"
            "    m_callback_state = previous_m_callback_state;\n") in text, text


def test_a_crlf_file_gets_crlf_lines_and_a_patch_with_one_line_per_line():
    c = (HELPER_MODULE % "    if (!check(o)) return NULL;").replace("\n", "\r\n")
    result = port_files([("m.c", c.encode())])
    new = result.new_text["m.c"]
    assert b"\r\r\n" not in new and new.count(b"\n") == new.count(b"\r\n")
    patch = unified_diff("m.c", c.encode(), new)
    assert all(line.endswith(b"\r") or line.startswith((b"---", b"+++", b"@@")) or line == b""
               for line in patch.split(b"\n"))


def test_a_definition_named_module_is_not_hidden_by_the_accessors_local():
    c = CONDITIONAL_TYPE.replace("#ifdef SOME_BUILD_OPTION\n    0, 0,\n#endif\n", "").replace(
        "static struct PyModuleDef def", "static struct PyModuleDef module").replace("&def", "&module")
    c = c.replace("static PyTypeObject T = {", "static PyObject *get(PyObject *self, PyObject *unused);\n"
                  "static PyObject *Err;\nstatic PyMethodDef T_methods[] = {{\"get\", get, METH_NOARGS, NULL}, {NULL}};\n"
                  "static PyTypeObject T = {").replace("    0,\n};", "    0,\n    .tp_methods = T_methods,\n};")
    c += "static PyObject *get(PyObject *self, PyObject *unused) { return Py_NewRef(Err); }\n"
    c = c.replace('    if (PyType_Ready(&T) < 0) return NULL;', '    Err = PyErr_NewException("m.Err", NULL, NULL);\n    if (PyType_Ready(&T) < 0) return NULL;')
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "PyType_GetModuleByDef(type, &module)" in text and "PyObject *owner = PyType_GetModuleByDef" in text


def test_a_module_kept_in_a_global_becomes_execs_parameter_and_each_functions_module():
    c = HEADER + """
typedef struct { PyObject *Err; } st_t;
PyObject *the_module;
#define ST (((st_t *)PyModule_GetState(the_module)))
static PyObject *
name(PyObject *self, PyObject *unused)
{
    PyErr_SetString(ST->Err, "no");
    return PyModule_GetNameObject(the_module);
}
static PyMethodDef name_methods[] = {{"name", name, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, sizeof(st_t), name_methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    the_module = PyModule_Create(&def);
    if (the_module == NULL)
        return NULL;
    ST->Err = PyErr_NewException("m.Err", NULL, NULL);
    return the_module;
}
"""
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "PyObject *the_module;" not in text and "m_exec(PyObject *the_module)" in text
    assert "#define ST (((st_t *)state))" in text and "return PyModule_GetNameObject(self);" in text


def test_a_statically_allocated_object_stays_global_and_weakens_the_claim():
    c = HEADER + """
typedef struct { PyObject_HEAD } Sentinel;
static PyTypeObject *sentinel_type_for_docs;
static Sentinel NoValue = {PyObject_HEAD_INIT(NULL)};
""" + INIT % "    PyModule_AddObjectRef(m, \"NoValue\", (PyObject *)&NoValue);"
    mp, text = port(c)
    assert mp.status == "ported"
    assert "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED" not in text
    assert any("statically allocated Python object" in r for r in mp.posture.reasons), mp.posture.reasons


def test_an_allocator_table_of_pymem_functions_passed_by_address_is_not_mutable_state():
    c = HEADER + """
typedef struct { void *(*alloc)(size_t); void (*free)(void *); } Alloc;
static Alloc allocator = {PyMem_Malloc, PyMem_Free};
void lib_use(Alloc *a);
static PyObject *
use(PyObject *module, PyObject *unused)
{
    lib_use(&allocator);
    Py_RETURN_NONE;
}
static PyMethodDef use_methods[] = {{"use", use, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, use_methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    return PyModule_Create(&def);
}
"""
    mp, text = port(c)
    assert mp.status == "ported" and mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED", mp.posture.reasons


def test_increfs_gathered_before_several_addobjects_go_with_them():
    c = HEADER + "static PyObject *ErrA, *ErrB;\n" + INIT % (
        '    ErrA = PyErr_NewException("m.A", NULL, NULL);\n'
        '    ErrB = PyErr_NewException("m.B", NULL, NULL);\n'
        "    Py_INCREF(ErrA);\n    Py_INCREF(ErrB);\n"
        '    PyModule_AddObject(m, "A", ErrA);\n    PyModule_AddObject(m, "B", ErrB);')
    mp, text = port(c)
    assert mp.status == "ported", mp.reason
    assert "Py_INCREF" not in text
    assert 'PyModule_AddObjectRef(m, "A", state->ErrA);' in text and 'PyModule_AddObjectRef(m, "B", state->ErrB);' in text


def test_a_callback_also_called_directly_does_not_read_the_published_state():
    c = with_method("""
static int
cmp(const void *a, const void *b)
{
    if (Err == NULL)
        return 0;
    return *(const int *)a - *(const int *)b;
}
static PyObject *
sort3(PyObject *module, PyObject *unused)
{
    int v[3] = {3, 1, 2};
    qsort(v, 3, sizeof(int), cmp);
    return PyLong_FromLong(cmp(&v[0], &v[1]));
}
""", "sort3", "METH_NOARGS")
    mp, text = port(c)
    assert "m_callback_state" not in text
    assert any(not it.done and "also called directly" in it.message for it in mp.items), [i.message for i in mp.items]


def test_an_old_limited_api_fills_in_the_slot_it_reserved_also_when_the_port_needs_no_exec():
    """Without an exec function the reserved `{0, NULL}` row is the table's first, and the
    function that fills it in at import must write that row, not the one after it."""
    c = "#define Py_LIMITED_API 0x030A0000\n#include <Python.h>\n" + """
static PyObject *one(PyObject *m, PyObject *unused) { return PyLong_FromLong(1); }
static PyMethodDef methods[] = {{"one", one, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    return PyModule_Create(&def);
}
"""
    mp, text = port(c)
    table = text[text.index("_slots[] = {"):text.index("};", text.index("_slots[] = {"))]
    assert "Py_mod_exec" not in table
    assert "_slots[0].slot = 3;" in text and "_slots[1]" not in text, text


LATE_FEATURE_MACRO = """#include <Python.h>
static PyObject *error;
static PyObject *fail(PyObject *m, PyObject *a) { PyErr_SetString(error, "no"); return NULL; }
%s
#ifdef __linux__
#define USE_COUNT
#endif
#ifdef USE_COUNT
static long count;
#endif
static PyObject *tick(PyObject *m, PyObject *a)
{
#ifdef USE_COUNT
    count++;
#endif
    Py_RETURN_NONE;
}
static PyMethodDef methods[] = {{"fail", fail, METH_NOARGS, NULL}, {"tick", tick, METH_NOARGS, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL) {
        return NULL;
    }
    error = PyErr_NewException("m.error", NULL, NULL);
    if (error == NULL || PyModule_AddObjectRef(m, "error", error) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
"""


def test_a_feature_macro_defined_below_the_state_block_moves_above_it_with_its_group():
    """`#define USE_COUNT` (on some platforms) after code that needs the state, then `#ifdef
    USE_COUNT static long count;`: the group that defines it moves above the state block, so
    that the field's condition reads it."""
    mp, text = port(LATE_FEATURE_MACRO % "")
    assert "state->error" in text and "state->count" in text, text
    assert text.index("#define USE_COUNT") < text.index("long count;") < text.index("tick(")
    assert text.count("#define USE_COUNT") == 1


def test_a_feature_macro_named_before_its_definition_stays_where_it_is_and_the_global_stays():
    """Moving the definition up would change what the earlier test of it means."""
    mp, text = port(LATE_FEATURE_MACRO % "#ifndef USE_COUNT\nstatic int counting_off = 1;\n#endif")
    assert "state->error" in text and "static long count;" in text and "state->count" not in text, text
    assert any(not it.done and "USE_COUNT" in it.message for it in mp.items), [it.message for it in mp.items]


def test_a_macro_defined_under_a_version_test_every_target_takes_decides_later_groups():
    """`#if PY_MAJOR_VERSION >= 3` `#define IS_PY3K`: every target defines it, so the `#else` of
    `#ifdef IS_PY3K` (a Python 2 init that uses the type) is dead, not a build that keeps the
    type static."""
    c = """#include <Python.h>
#if PY_MAJOR_VERSION >= 3
#define IS_PY3K
#endif
typedef struct { PyObject_HEAD } CtxObject;
static PyTypeObject CtxType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Ctx", .tp_basicsize = sizeof(CtxObject), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
#ifdef IS_PY3K
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    if (PyType_Ready(&CtxType) < 0 || PyModule_AddObjectRef(m, "Ctx", (PyObject *)&CtxType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
#else
PyMODINIT_FUNC initm(void)
{
    PyObject *m = Py_InitModule("m", methods);
    PyType_Ready(&CtxType);
    PyModule_AddObject(m, "Ctx", (PyObject *)&CtxType);
}
#endif
"""
    mp, text = port(c)
    assert "state->CtxType" in text and "static PyTypeObject CtxType" not in text, text
    assert all(it.done for it in mp.items if "CtxType" in it.message), [it.message for it in mp.items]


def test_add_object_of_a_new_reference_becomes_add_object_ref_of_the_object():
    """`PyModule_AddObject(m, "Error", Py_NewRef(Error))` gave the module the new reference;
    PyModule_AddObjectRef takes its own, so a kept Py_NewRef would leak one per load."""
    c = """#include <Python.h>
static PyObject *Error;
static PyObject *boom(PyObject *m, PyObject *a) { PyErr_SetString(Error, "boom"); return NULL; }
static PyMethodDef methods[] = {{"boom", boom, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Error = PyErr_NewException("m.Error", NULL, NULL);
    if (Error == NULL || PyModule_AddObject(m, "Error", Py_NewRef(Error)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
"""
    _, text = port(c)
    assert 'PyModule_AddObjectRef(m, "Error", state->Error)' in text, text
    assert "Py_NewRef(state->Error)" not in text


def test_a_type_ready_inside_a_checking_macro_goes_with_the_conversion():
    """`CHECK_INT(PyType_Ready(&T));` with `#define CHECK_INT(expr) do { if ((expr) < 0) goto
    error; } while (0)`: the statement only readies T, which the heap type makes moot."""
    c = """#include <Python.h>
#define CHECK_INT(expr) \\
    do { if ((expr) < 0) goto error; } while (0)
typedef struct { PyObject_HEAD } CtxObject;
static PyTypeObject CtxType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Ctx", .tp_basicsize = sizeof(CtxObject), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, NULL};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    CHECK_INT(PyType_Ready(&CtxType));
    CHECK_INT(PyModule_AddObjectRef(m, "Ctx", (PyObject *)&CtxType));
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
"""
    _, text = port(c)
    assert "state->CtxType" in text and "PyType_Ready" not in text, text


WORKER_INIT = """#include <Python.h>
%s
static int
fill(PyObject *module)
{
    %s
    return PyModule_AddIntConstant(module, "ANSWER", 42);
}
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, NULL};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    if (fill(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
"""


def test_an_init_that_only_has_a_worker_fill_the_module_makes_the_worker_the_exec_slot():
    """`if (fill(m) < 0) { Py_DECREF(m); return NULL; }` is all PyInit does: `fill` is the
    Py_mod_exec function, not a generated exec that only calls it."""
    mp, text = port(WORKER_INIT % ("", ""))
    assert "{Py_mod_exec, fill}" in text and "m_exec" not in text, text
    assert "return PyModuleDef_Init(&def);" in text and "PyModule_Create" not in text
    assert any("fill() is the Py_mod_exec function" in it.message for it in mp.items)


def test_an_init_whose_worker_needs_the_state_keeps_its_own_exec():
    mp, text = port(WORKER_INIT % ("static PyObject *cached;", "cached = PyUnicode_FromString(\"x\");"))
    assert "{Py_mod_exec, m_exec}" in text, text


PROCESS_CACHE = HEADER + """
#include <unistd.h>
%s
static PyObject *
get(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(cached());
}
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("get", "get", "METH_NOARGS")


@pytest.mark.parametrize("cache", [
    "static long v;\nstatic long cached(void) { if (!v) v = sysconf(_SC_PAGESIZE); return v; }",
    "static long v = -1;\nstatic long cached(void) { if (v >= 0) return v; v = sysconf(_SC_PAGESIZE); return v; }",
    "static long cached(void) { static long v = 0; if (v == 0) { long n = sysconf(_SC_PAGESIZE); v = n; } "
    "return v; }",
])
def test_a_cache_of_process_wide_c_data_stays_global_without_weakening_the_claim(cache):
    mp, text = port(PROCESS_CACHE % cache)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert "->v" not in text
    assert [f.subject for f in mp.module.findings if f.code == "process-constant"] == ["v"]


@pytest.mark.parametrize("cache", [
    # from a project function: it may read anything
    "static long other(void) { return 4096; }\n"
    "static long v;\nstatic long cached(void) { if (!v) v = other(); return v; }",
    # from a Python call
    "static long v;\nstatic long cached(void) { if (!v) v = PyLong_AsLong(PySys_GetObject(\"maxsize\")); return v; }",
    # from another global that changes
    "static long base = 1;\nstatic long v;\n"
    "static long cached(void) { base++; if (!v) v = base * 2; return v; }",
    # written outside the guard too
    "static long v;\nstatic long cached(void) { if (!v) v = sysconf(_SC_PAGESIZE); v += 0; return v; }",
    "static long v;\nstatic long cached(void) { v = sysconf(_SC_PAGESIZE); return v; }",
    # its address escapes
    "static long v;\nstatic void fill(long *p) { *p = 1; }\n"
    "static long cached(void) { if (!v) v = sysconf(_SC_PAGESIZE); fill(&v); return v; }",
    # the guard tests something else too
    "static long v;\nstatic int flag;\nstatic long cached(void) { if (!v && !flag) v = sysconf(_SC_PAGESIZE); "
    "return v; }",
])
def test_a_cache_that_may_differ_between_interpreters_is_module_state(cache):
    mp, text = port(PROCESS_CACHE % cache)
    assert not [f for f in mp.module.findings if f.code == "process-constant" and f.subject == "v"]
    (v,) = [g for g in mp.module.globals if g.name == "v"]
    assert v.kind is GlobalKind.MUTABLE_DATA
    assert "->v" in text or mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def with_type_t(method: str, new: str) -> str:
    """A static type T of `Obj` instances with one METH_NOARGS method, and an init that readies
    and adds it."""
    return """
static PyMethodDef T_methods[] = {{"%s", (PyCFunction)%s, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static PyTypeObject T = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.T", .tp_basicsize = sizeof(Obj), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = T_methods, .tp_new = %s,
};
""" % (method, method, new) + INIT % "    if (PyType_Ready(&T) < 0 || PyModule_AddObjectRef(m, \"T\", (PyObject *)&T) < 0) return NULL;"


OBJECT_USER_DATA = HEADER + """
typedef size_t (*sink_fn)(void *user);
typedef struct { PyObject_HEAD sink_fn sink; void *user; } Obj;
typedef struct { int unused; } Other;
static long count;
static size_t sink(void *user) { %s }
static PyObject *run(Obj *self, PyObject *unused) { return PyLong_FromSize_t(self->sink(self->user)); }
static PyObject *make(PyTypeObject *tp, PyObject *a, PyObject *k)
{
    Obj *self = (Obj *)tp->tp_alloc(tp, 0);
    if (self != NULL) { self->sink = sink; self->user = self; }
    return (PyObject *)self;
}
""" + with_type_t("run", "make")


def test_a_callback_handed_a_module_object_as_user_data_reaches_state_through_its_type():
    mp, text = port(OBJECT_USER_DATA % "Obj *self = (Obj *)user; count++; return (size_t)count;")
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert "get_m_state_by_type(Py_TYPE(user))" in text and "state->count++" in text


@pytest.mark.parametrize("body", [
    "Obj *self = (Obj *)user; if (self == NULL) return 0; count++; return 1;",
    "if (!user || ((Obj *)user)->sink == NULL) { return 0; } count++; return 1;",
])
def test_user_data_checked_for_null_first_leads_to_state_past_the_check(body):
    mp, text = port(OBJECT_USER_DATA % body)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    sink = text[text.index("static size_t sink(void *user)"):]
    assert sink.index("return 0;") < sink.index("get_m_state_by_type(Py_TYPE(user))") < sink.index("state->count++")


@pytest.mark.parametrize("body", [
    # the user data may be NULL where the state is needed
    "Obj *self = (Obj *)user; count++; return self ? 1 : 0;",
    "count++; if (!user) return 0; return ((Obj *)user)->sink != NULL;",
    "Obj *self = (Obj *)user; if (self == NULL) count++; return 1;",
    # cast to two different things: porter cannot tell what it is
    "count++; return ((Obj *)user)->user != NULL || ((Other *)user)->unused;",
])
def test_user_data_that_may_be_null_or_something_else_does_not_lead_to_state(body):
    mp, text = port(OBJECT_USER_DATA % body)
    assert "Py_TYPE(user)" not in text
    # The sink is kept in the module's own field and called through it: that slot passes the state.
    assert "static size_t sink(m_state *state, void *user)" in text
    assert "self->sink(state, self->user)" in text


OWN_FREE = HEADER + """
typedef struct { PyObject_HEAD PyObject *item; } Obj;
static PyObject *Err;
static void T_dealloc(Obj *self)
{
    Py_XDECREF(self->item);
    T.tp_free((PyObject *)self);
}
static PyObject *T_fail(Obj *self, PyObject *unused) { PyErr_SetString(Err, "no"); return NULL; }
static PyMethodDef T_methods[] = {{"fail", (PyCFunction)T_fail, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static PyTypeObject T = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.T", .tp_basicsize = sizeof(Obj), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)T_dealloc, .tp_methods = T_methods, .tp_new = PyType_GenericNew,
};
""" + INIT % ("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n"
              "    if (PyType_Ready(&T) < 0 || PyModule_AddObjectRef(m, \"T\", (PyObject *)&T) < 0) return NULL;")


def test_a_dealloc_that_frees_through_its_own_static_type_frees_through_the_objects_type():
    # (T is declared after its dealloc in real code through a prototype; here the
    # tentative definition order does not matter to porter.)
    source = OWN_FREE.replace("typedef struct { PyObject_HEAD PyObject *item; } Obj;",
                              "typedef struct { PyObject_HEAD PyObject *item; } Obj;\nstatic PyTypeObject T;")
    mp, text = port(source)
    start = text.index("T_dealloc(Obj *self)")
    dealloc = text[start:text.index("\n}\n", start)]
    assert "tp->tp_free((PyObject *)self);" in dealloc
    assert "Py_DECREF(tp);" in dealloc
    assert "state" not in dealloc and "GetModuleByDef" not in dealloc
    assert not [i for i in mp.items if i.step == "gc-slot-lookup"]


SORTER = HEADER + """
#include <stdlib.h>
static long comparisons;
static int cmp(const void *a, const void *b)
{
    comparisons++;
    return *(const int *)a - *(const int *)b;
}
static PyObject *
sort3(PyObject *module, PyObject *arg)
{
    int v[3] = {3, 1, 2};
    int n = (int)PyLong_AsLong(arg);
    if (n > 1)
        qsort(v, 3, sizeof(int), cmp);
%s
    return PyLong_FromLong(v[0] + comparisons);
}
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("sort3", "sort3", "METH_O")


@pytest.mark.parametrize("more", ["", "    else if (n < 0) qsort(v, 2, sizeof(int), cmp);"])
def test_publishing_state_around_a_call_that_is_a_branch_on_its_own_braces_it(more):
    mp, text = port(SORTER % more)
    body = text[text.index("sort3(PyObject *module"):]
    # The publication and the restore stay under the `if`, with the call.
    assert "    if (n > 1)\n    {\n" in body
    braced = body[body.index("    if (n > 1)\n    {\n"):]
    block = braced[:braced.index("\n    }")]
    assert block.count("m_callback_state = state;") == 1 and "qsort(v, 3, sizeof(int), cmp);" in block
    assert block.rstrip().endswith("= previous_m_callback_state;")


UNREAD = with_method("""
static PyObject *f(PyObject *module, PyObject *arg)
{
#ifdef SOME_FEATURE
    if (arg == Py_None) {
#else
    if (arg == Py_True) {
%s
#endif
        return NULL;
    }
    Py_RETURN_NONE;
}
""", "f", "METH_O")


def test_a_global_set_in_an_unread_branch_is_rewritten_on_its_tokens():
    mp, text = port(UNREAD % "        PyErr_SetString(Err, \"true\");")
    assert "PyErr_SetString(state->Err, \"true\");" in text
    assert [i.applicability.value for i in mp.items if "did not read" in i.message] == ["review"]


def test_a_name_an_unread_branch_may_declare_again_keeps_the_global():
    mp, text = port(UNREAD % "        PyObject *Err = PyExc_ValueError; PyErr_SetString(Err, \"true\");")
    assert "state->Err" not in text
    assert any("may declare a local of the same name" in r for r in mp.posture.reasons)


KEPT_OBJECT = HEADER + """
typedef struct Lib Lib;
typedef int (*tick_fn)(Lib *lib);
extern void *lib_opaque(Lib *lib);
extern void lib_set(Lib *lib, tick_fn f);
typedef struct { PyObject_HEAD Lib *lib; } Obj;
static long count;
static int on_tick(Lib *lib) { %s }
static PyObject *arm(Obj *self, PyObject *unused) { lib_set(self->lib, on_tick); Py_RETURN_NONE; }
""" + with_type_t("arm", "PyType_GenericNew")


@pytest.mark.parametrize("body", [
    "Obj *self = (Obj *)lib_opaque(lib); count++; return self->lib != NULL;",
    "Obj *self = lib_opaque(lib);\n    if (self == NULL) return -1;\n    count++; return 0;",
])
def test_a_callback_that_fetches_a_module_object_first_reaches_state_through_it(body):
    mp, text = port(KEPT_OBJECT % body)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    tick = text[text.index("static int on_tick(Lib *lib)"):]
    assert tick.index("lib_opaque(lib)") < tick.index("get_m_state_by_type(Py_TYPE(self))") < tick.index("state->count")


@pytest.mark.parametrize("body", [
    # used before the object is fetched
    "count++; Obj *self = (Obj *)lib_opaque(lib); return self->lib != NULL;",
    # tested for NULL where the state is needed
    "Obj *self = (Obj *)lib_opaque(lib); if (self) count++; return 0;",
    # another object later
    "Obj *self = (Obj *)lib_opaque(lib); self = NULL; count++; return 0;",
])
def test_a_fetched_object_that_may_be_another_or_absent_does_not_lead_to_state(body):
    mp, text = port(KEPT_OBJECT % body)
    assert "Py_TYPE(self)" not in text
    assert mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_a_fuzzer_entry_point_keeps_its_signature():
    c = HEADER + """
#include <stdint.h>
static PyObject *seen;
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (seen == NULL) seen = PyList_New(0);
    return seen == NULL ? -1 : 0;
}
static PyObject *run(PyObject *module, PyObject *unused) { return PyLong_FromLong(LLVMFuzzerTestOneInput(NULL, 0)); }
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("run", "run", "METH_NOARGS")
    mp, text = port(c)
    assert "int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)" in text
    assert "LLVMFuzzerTestOneInput(NULL, 0)" in text
    assert any("called by name from outside the project" in r for r in mp.posture.reasons)


def test_a_flag_guarding_a_librarys_initialisation_is_not_a_process_constant():
    """`if (!ready) { lib_init(); ready = 1; }`: the guard makes the call happen once; two
    interpreters seeing 0 at once would both make it. Not a cache of a value."""
    mp, text = port(PROCESS_CACHE % (
        "extern void lib_init(void);\nstatic long v;\n"
        "static long cached(void) { if (!v) { lib_init(); v = 1; } return v; }"))
    (v,) = [g for g in mp.module.globals if g.name == "v"]
    assert v.kind is not GlobalKind.PROCESS_CONSTANT


@pytest.mark.parametrize(("guard", "locked"), [
    ("    if (!ready) {\n        lib_init();\n        ready = 1;\n    }", True),
    # an early exit inside: porter does not hold a lock across it
    ("    if (!ready) {\n        if (lib_init() < 0)\n            return NULL;\n        ready = 1;\n    }", False),
])
def test_a_library_init_guard_stays_once_per_process_and_is_locked_where_it_can_be(guard, locked):
    c = HEADER + "extern int lib_init(void);\nstatic int ready;\n" + INIT % guard
    mp, text = port(c)
    assert "static int ready;" in text and "state->ready" not in text
    assert ("PyThread_acquire_lock(m_once_lock(), WAIT_LOCK);" in text) is locked
    if locked:
        assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    else:
        assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
        assert [i.code for i in mp.items if not i.done] == ["once-guard"]


def test_each_exit_hook_gets_a_first_load_test_of_its_own():
    c = HEADER + "static void a(void) {}\nstatic void b(void) {}\n" + INIT % "    Py_AtExit(a);\n    Py_AtExit(b);"
    mp, text = port(c)
    assert "if (m_first_load()) {\n        Py_AtExit(a);" in text
    assert "if (m_first_load2()) {\n        Py_AtExit(b);" in text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_a_type_with_tp_vectorcall_stays_static_within_the_limited_api():
    source = (Path(__file__).parent.parent / "fixtures" / "type-vectorcall" / "points.c").read_text()
    mp, text = port("#define Py_LIMITED_API 0x030C0000\n" + source)
    assert "static PyTypeObject Point_Type" in text and "->tp_vectorcall" not in text
    assert any("within the limited API" in r for r in mp.posture.reasons)


def test_an_offset_into_another_struct_keeps_the_type_static():
    """`tp_vectorcall_offset = offsetof(PyTypeObject, tp_vectorcall)` on a type whose instances
    are small: PyType_FromSpec would refuse the `__vectorcalloffset__` member."""
    source = (Path(__file__).parent.parent / "fixtures" / "type-vectorcall" / "points.c").read_text()
    source = source.replace("    .tp_vectorcall = Point_vectorcall,",
                            "    .tp_vectorcall = Point_vectorcall,\n"
                            "    .tp_vectorcall_offset = offsetof(PyTypeObject, tp_vectorcall),")
    mp, text = port(source)
    assert "static PyTypeObject Point_Type" in text and "__vectorcalloffset__" not in text
    assert any("an offset in another struct" in r for r in mp.posture.reasons)


def test_an_offset_into_the_type_struct_of_a_metatype_is_into_its_instances():
    """A metatype (Py_TPFLAGS_TYPE_SUBCLASS) makes type objects: offsetof(PyTypeObject, ...)
    is an offset into its instances, and is no reason to keep it static."""
    c = HEADER + """typedef struct { PyHeapTypeObject base; long extra; } MetaObject;
static PyTypeObject Meta = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Meta", .tp_basicsize = sizeof(MetaObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_TYPE_SUBCLASS | _Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_call = PyVectorcall_Call, .tp_vectorcall_offset = offsetof(PyTypeObject, tp_vectorcall),
};
""" + INIT % ("    Meta.tp_base = &PyType_Type;\n    if (PyType_Ready(&Meta) < 0) return NULL;\n"
              "    if (PyModule_AddObjectRef(m, \"Meta\", (PyObject *)&Meta) < 0) return NULL;")
    mp, text = port(c)
    assert not any("an offset in another struct" in r for r in mp.posture.reasons), mp.posture.reasons


def test_the_base_of_a_type_that_stays_static_stays_static():
    c = HEADER + """
typedef struct { PyObject_HEAD long v; } Obj;
static PyTypeObject Base = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Base", .tp_basicsize = sizeof(Obj), .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
};
static PyTypeObject Derived = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Derived", .tp_basicsize = sizeof(Obj), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_vectorcall_offset = offsetof(PyTypeObject, tp_vectorcall),
};
""" + INIT % ("    Derived.tp_base = &Base;\n"
              "    if (PyType_Ready(&Base) < 0 || PyType_Ready(&Derived) < 0) return NULL;\n"
              "    if (PyModule_AddObjectRef(m, \"Base\", (PyObject *)&Base) < 0) return NULL;")
    mp, text = port(c)
    assert "static PyTypeObject Base = {" in text and "static PyTypeObject Derived = {" in text
    assert any(r.startswith("Base ") and "derives from it" in r for r in mp.posture.reasons)


def with_added_functions(helpers: str, init: str) -> str:
    """A module whose function `bump` (a global counter) is in a table outside m_methods."""
    return HEADER + """
static long count;
static PyObject *bump(PyObject *self, PyObject *unused) { return PyLong_FromLong(++count); }
static PyMethodDef extra[] = {{"bump", bump, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
""" + helpers + INIT % init


def test_functions_made_with_a_null_self_in_init_get_the_module():
    c = with_added_functions("", """    PyObject *f = PyCFunction_New(&extra[0], NULL);
    if (f == NULL || PyModule_AddObject(m, "bump", f) < 0) return NULL;""")
    mp, text = port(c)
    assert "PyCFunction_New(&extra[0], m)" in text
    assert "state->count" in text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_functions_made_with_a_null_self_where_no_module_can_be_passed_keep_their_globals():
    # The helper that makes them is also a callback: nothing can hand it the module.
    c = with_added_functions("""static void add_all(void *d)
{
    PyObject *f = PyCFunction_New(extra, NULL);
    PyDict_SetItemString((PyObject *)d, "bump", f);
    Py_XDECREF(f);
}
static void (*later)(void *) = add_all;
""", "    later(PyModule_GetDict(m));")
    mp, text = port(c)
    assert "PyCFunction_New(extra, NULL)" in text
    assert "static long count;" in text
    reasons = " ".join(mp.posture.reasons)
    assert "PyCFunction_New() in add_all() makes it with no module as `self`" in reasons


def with_project_caller(caller: str) -> str:
    """A module whose callback `on_item` (reading the global `hits`) goes to the project's own
    function `each(items, cb)`, defined as `caller`."""
    return HEADER + """
static long hits;
static int on_item(void *items, long i) { hits++; return 0; }
""" + caller + """
static PyObject *run(PyObject *self, PyObject *items) { each(items, on_item); return PyLong_FromLong(hits); }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"run", run, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % ""


def test_a_callback_the_project_s_own_function_only_calls_reads_published_state():
    mp, text = port(with_project_caller(
        "static void each(void *items, int (*cb)(void *, long)) { for (long i = 0; i < 3; i++) cb(items, i); }"))
    assert "static long hits;" not in text
    assert "m_callback_state" in text


def test_a_callback_the_project_s_own_function_keeps_is_not_called_back_during_the_call():
    mp, text = port(with_project_caller(
        "static int (*kept)(void *, long);\n"
        "static void each(void *items, int (*cb)(void *, long)) { kept = cb; }"))
    assert "static long hits;" in text
    assert "m_callback_state" not in text


def test_static_functions_of_one_name_take_the_roles_of_their_own_file_s_tables():
    """A module function `get` in one file and a method `get` of a type in another: each is
    what its own file's table names."""
    a = HEADER + """extern PyObject *Err;
static PyObject *get(PyObject *module, PyObject *arg) { PyErr_SetString(Err, "no"); return NULL; }
static PyMethodDef a_methods[] = {{"get", get, METH_O, NULL}, {NULL, NULL, 0, NULL}};
int add_a(PyObject *m) { return PyModule_AddFunctions(m, a_methods); }
"""
    b = HEADER + """typedef struct { PyObject_HEAD long n; } Obj;
static PyObject *get(Obj *self, PyObject *arg) { return PyLong_FromLong(self->n); }
static PyMethodDef b_methods[] = {{"get", (PyCFunction)get, METH_O, NULL}, {NULL, NULL, 0, NULL}};
PyTypeObject BType = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.B", .tp_basicsize = sizeof(Obj),
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_methods = b_methods, .tp_new = PyType_GenericNew};
"""
    m = HEADER + "int add_a(PyObject *m);\nextern PyTypeObject BType;\nPyObject *Err;\n" + INIT % """    Err = PyErr_NewException("m.Err", NULL, NULL);
    if (add_a(m) < 0 || PyType_Ready(&BType) < 0) return NULL;"""
    result = port_files([("a.c", a.encode()), ("b.c", b.encode()), ("m.c", m.encode())])
    (mp,) = result.modules
    roles = {f.name: f.role_kinds for f in mp.module.functions if f.c_name == "get"}
    assert {str(k) for k in roles} == {"a.c:get", "b.c:get"}
    assert [r.value for r in roles["a.c:get"]] == ["module-method"]
    assert [r.value for r in roles["b.c:get"]] == ["type-method"]
    assert b"get_m_state(module)" in result.new_text["a.c"]


ARRAY_SIZED_BY_C_MACROS = """#include <Python.h>
#include "shared.h"
#define FIRST_CODE 3
%s
static PyObject *errors[LAST_CODE - FIRST_CODE + 1];
PyObject *raise_code(int code) {
    if (code < FIRST_CODE || code > LAST_CODE) { PyErr_SetString(Err, "bad"); return NULL; }
    PyErr_SetNone(errors[code - FIRST_CODE]);
    return NULL;
}
int fill_errors(PyObject *m) {
    for (int i = 0; i <= LAST_CODE - FIRST_CODE; i++) {
        errors[i] = PyErr_NewException("m.E", Err, NULL);
        if (errors[i] == NULL) return -1;
    }
    return 0;
}
"""
SHARED_H = """#ifndef SHARED_H
#define SHARED_H
extern PyObject *Err;
PyObject *raise_code(int code);
int fill_errors(PyObject *m);
#endif
"""
RAISER = HEADER + """#include "shared.h"
PyObject *Err;
static PyObject *go(PyObject *module, PyObject *arg) { return raise_code((int)PyLong_AsLong(arg)); }
""" + INIT.replace("{{NULL, NULL, 0, NULL}}", '{{"go", go, METH_O, NULL}, {NULL, NULL, 0, NULL}}') % """    Err = PyErr_NewException("m.Err", NULL, NULL);
    if (Err == NULL || fill_errors(m) < 0) return NULL;"""


@pytest.mark.parametrize(("definitions", "moves"), [
    ("#ifdef HAVE_MORE_CODES\n#define LAST_CODE 9\n#else\n#define LAST_CODE 7\n#endif", True),
    ("#define LAST_CODE 7", True),
    ("#ifndef LAST_CODE\n#define LAST_CODE 7\n#endif", True),
    ("#ifdef HAVE_MORE_CODES\n#define LAST_CODE 9\nstatic int more = 1;\n#else\n#define LAST_CODE 7\n#endif", False),
], ids=["an #ifdef group of defines moves", "a #define line moves", "a default a build may override moves",
        "a group with code stays"])
def test_an_array_sized_by_macros_of_a_c_file_brings_them_into_the_state_header(definitions, moves):
    c = ARRAY_SIZED_BY_C_MACROS % definitions
    result = port_files([("codes.c", c.encode()), ("shared.h", SHARED_H.encode()), ("m.c", RAISER.encode())])
    (mp,) = result.modules
    assert ((None, "errors") not in mp.kept) is moves
    header = result.new_text["shared.h"].decode()
    assert ("#define FIRST_CODE 3" in header) is moves
    if moves:
        assert header.index("LAST_CODE 7") < header.index("errors[LAST_CODE - FIRST_CODE + 1]")
        assert "#define FIRST_CODE" not in result.new_text["codes.c"].decode()
    else:
        assert "type-declared-late" in [it.code for it in mp.items if it.subject == "errors"]


THREAD_START = HEADER + """
#include "pythread.h"
static PyThread_type_lock done;
static int call_it(PyObject *fn) { PyObject *r = PyObject_CallNoArgs(fn); Py_XDECREF(r); return r != NULL; }
static void
in_thread(void *fn)
{
    call_it((PyObject *)fn);
    PyThread_release_lock(done);
}
static PyObject *
run(PyObject *module, PyObject *args)
{
    PyObject *fn;
    if (!PyArg_ParseTuple(args, "O:run", &fn))
        return NULL;
    done = PyThread_allocate_lock();
    PyThread_acquire_lock(done, 1);
    PyThread_start_new_thread(in_thread, fn);
    int ok = call_it(fn);
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(done, 1);
    Py_END_ALLOW_THREADS
    PyThread_release_lock(done);
    PyThread_free_lock(done);
    return PyBool_FromLong(ok);
}
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("run", "run", "METH_VARARGS")


def test_a_callback_handed_to_a_thread_start_reaches_no_state_its_caller_publishes():
    """A thread-local set around PyThread_start_new_thread() (or around the calls handed its
    argument) is NULL on the new thread: the callback's global stays, with the reason."""
    mp, text = port(THREAD_START)
    assert "m_callback_state" not in text and "THREAD_LOCAL" not in text
    assert (None, "done") in mp.kept


BUILTIN_BASE = HEADER + """
typedef struct { PyListObject list; int deallocated; } MyListObject;
static void
MyList_dealloc(MyListObject *op)
{
    op->deallocated = 1;
    PyList_Type.tp_dealloc((PyObject *)op);
}
static PyTypeObject MyList_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.MyList", .tp_basicsize = sizeof(MyListObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, .tp_dealloc = (destructor)MyList_dealloc,
};
""" + INIT % ("    MyList_Type.tp_base = &PyList_Type;\n"
              "    if (PyType_Ready(&MyList_Type) < 0) return NULL;\n"
              "    if (PyModule_AddObjectRef(m, \"MyList\", (PyObject *)&MyList_Type) < 0) return NULL;")


def test_a_dealloc_handing_the_object_to_a_builtin_bases_dealloc_releases_the_heap_type_after():
    """list_dealloc frees the object through tp_free but, written for static types, never
    releases the type: each instance of the heap type would keep a reference to it."""
    mp, text = port(BUILTIN_BASE)
    dealloc = text[text.index("MyList_dealloc(MyListObject *op)"):]
    dealloc = dealloc[:dealloc.index("\n}\n")]
    assert "PyTypeObject *tp = Py_TYPE(op);" in dealloc
    assert dealloc.index("PyList_Type.tp_dealloc((PyObject *)op);") < dealloc.index("Py_DECREF(tp);")
    assert not [i for i in mp.items if i.code == "dealloc-frees-nothing"]


def test_a_part_in_another_folder_links_when_it_shares_a_header_and_names_the_c_api():
    """parts/x.c shares parts/parts.h with the init file and is linked; lib/y.c, a vendored
    library whose header the module includes too, exports what the module calls but names no
    C API: it is compiled on its own terms, not as a part."""
    from porter.analyze.project import LinkFacts, link_files

    closures = {"m.c": ["m.c", "parts/parts.h", "lib/y.h"], "parts/x.c": ["parts/x.c", "parts/parts.h"],
                "lib/y.c": ["lib/y.c", "lib/y.h"], "parts/parts.h": ["parts/parts.h"], "lib/y.h": ["lib/y.h"],
                "other/z.c": ["other/z.c"]}
    facts = {"m.c": LinkFacts(frozenset({"PyInit_m"}), frozenset({"PyObject", "init_x", "y_run"})),
             "parts/x.c": LinkFacts(frozenset({"init_x"}), frozenset({"PyObject", "init_x"})),
             "lib/y.c": LinkFacts(frozenset({"y_run"}), frozenset({"y_run", "size_t"})),
             "other/z.c": LinkFacts(frozenset({"init_x2"}), frozenset({"PyObject", "y_run"})),
             "parts/parts.h": LinkFacts(frozenset(), frozenset()), "lib/y.h": LinkFacts(frozenset(), frozenset())}
    linked = link_files(facts, list(closures), closures, ["m.c"])
    assert linked["m.c"] == ["parts/x.c"]


CAPSULE_CHECK = HEADER + """typedef struct { PyObject_HEAD long v; } Obj;
static PyTypeObject T;
#define T_Check(op) PyObject_TypeCheck(op, &T)
static PyObject *get(PyObject *op) { %s }
typedef struct { PyObject *(*get)(PyObject *); } CAPI_t;
static CAPI_t CAPI = {get};
static PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.T", .tp_basicsize = sizeof(Obj),
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = PyType_GenericNew};
""" + INIT % """    if (PyType_Ready(&T) < 0 || PyModule_AddObjectRef(m, "T", (PyObject *)&T) < 0) return NULL;
    if (PyModule_Add(m, "CAPI", PyCapsule_New(&CAPI, "m.CAPI", NULL)) < 0) return NULL;"""


@pytest.mark.parametrize(("body", "converts"), [
    ("if (!T_Check(op)) return NULL; return PyLong_FromLong(((Obj *)op)->v);", True),
    ("if (!PyObject_TypeCheck(op, &T)) return NULL; return PyLong_FromLong(((Obj *)op)->v);", True),
    ("if (!T_Check(op)) return (PyObject *)PyObject_New(Obj, &T); return Py_NewRef(op);", False),
], ids=["through the check macro", "a direct check", "the type also made there"])
def test_a_function_with_no_state_checks_instances_through_the_object_s_type(body, converts):
    mp, text = port(CAPSULE_CHECK % body)
    assert ("static PyTypeObject T = " not in text) is converts, text
    assert ("m_instance_of(op, offsetof(m_state, T), 0)" in text) is converts
    if not converts:
        assert "unreachable-function" in [it.code for it in mp.items if it.subject == "T"]


def test_callbacks_in_a_local_table_a_library_keeps_are_not_called_back_during_the_call():
    """`PyMem_SetAllocator(domain, &alloc)` copies the local table and calls its hooks ever
    after, from any thread: no thread-local the caller publishes reaches them."""
    c = with_method("""static long calls;
static void *hook_malloc(void *ctx, size_t size) { calls++; return PyMem_RawMalloc(size); }
static void *hook_calloc(void *ctx, size_t n, size_t size) { return PyMem_RawCalloc(n, size); }
static void *hook_realloc(void *ctx, void *p, size_t size) { return PyMem_RawRealloc(p, size); }
static void hook_free(void *ctx, void *p) { PyMem_RawFree(p); }
static PyObject *install(PyObject *m, PyObject *unused)
{
    PyMemAllocatorEx alloc = {NULL, hook_malloc, hook_calloc, hook_realloc, hook_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &alloc);
    return PyLong_FromLong(calls);
}
""", "install", "METH_NOARGS")
    mp, text = port(c)
    assert "static long calls;" in text and "m_callback_state" not in text
    assert "unreachable-function" in [it.code for it in mp.items if it.subject == "calls"]


def test_a_field_of_a_type_outside_the_limited_api_a_part_declares_stays_global():
    """A part of the module defines Py_LIMITED_API before it includes the header the state goes
    in: a field of a type that API does not declare (PyMemAllocatorEx) would not compile there."""
    parts_h = "#ifndef PARTS_H\n#define PARTS_H\n#include <Python.h>\nextern PyObject *Err;\nint part_add(PyObject *m);\n#endif\n"
    part = '#define Py_LIMITED_API 0x030a0000\n#include "parts.h"\n' \
           'int part_add(PyObject *m) { return PyModule_AddObjectRef(m, "E2", Err); }\n'
    main = '#include <Python.h>\n#include "parts.h"\nstatic PyMemAllocatorEx saved;\nPyObject *Err;\n' \
           "static PyObject *get(PyObject *m, PyObject *a) { PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &saved); " \
           "return Py_NewRef(Err); }\n" + INIT.replace(
               "{{NULL, NULL, 0, NULL}}", '{{"get", get, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}}') % \
        '    Err = PyErr_NewException("m.Err", NULL, NULL);\n    if (Err == NULL || part_add(m) < 0) return NULL;'
    result = port_files([("m.c", main.encode()), ("parts.h", parts_h.encode()), ("part.c", part.encode())])
    (mp,) = result.modules
    header = result.new_text["parts.h"].decode()
    assert "PyObject *Err;" in header and "PyMemAllocatorEx" not in header, header
    reasons = [it.message for it in mp.items if it.subject == "saved"]
    assert any("PyMemAllocatorEx" in r and "limited API" in r for r in reasons), reasons


def test_a_spec_type_kept_in_a_global_through_a_local_is_made_with_the_module():
    """`o = PyType_FromSpec(&spec); ... Pair_Type = o;` (_tkinter's way): the global keeps a
    type made from a spec, whose methods then find module state through their type."""
    c = HEADER + """typedef struct { PyObject_HEAD long v; } Obj;
static PyObject *Pair_Type;
static long made;
static PyObject *pair_count(PyObject *self, PyObject *unused) { return PyLong_FromLong(made); }
static PyMethodDef pair_methods[] = {{"count", pair_count, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static PyType_Slot pair_slots[] = {{Py_tp_methods, pair_methods}, {0, NULL}};
static PyType_Spec pair_spec = {"m.Pair", sizeof(Obj), 0, Py_TPFLAGS_DEFAULT, pair_slots};
""" + INIT % """    PyObject *o = PyType_FromSpec(&pair_spec);
    if (o == NULL || PyModule_AddObjectRef(m, "Pair", o) < 0) return NULL;
    Pair_Type = o;
    made++;"""
    mp, text = port(c)
    assert "PyType_FromModuleAndSpec(m, &pair_spec, NULL)" in text, text
    assert "state->made" in text and "static long made;" not in text


READ_THROUGH = HEADER + """
#include <string.h>
typedef struct { char *name; long n; char tag[4]; } D;
static D table[] = {{"a", 1, "x"}, {NULL, 0, ""}};
%s
static PyObject *f(PyObject *m, PyObject *a) { return PyLong_FromLong(use(%s)); }
""" + ONE_METHOD.replace("Err = PyErr_NewException(\"m.Err\", NULL, NULL);", "") % ("f", "f", "METH_NOARGS")


@pytest.mark.parametrize("helper, arg", [
    ("static long use(D *d) { return d->n + (long)strlen(d->name) + d->tag[0]; }", "&table[0]"),
    ("static long use(D *d) { long s = 0; for (; d->name != NULL; d++) s += d->n; return s; }", "table"),
    ("static long inner(D *d) { return d->n; }\nstatic long use(D *d) { return d ? inner(d) : 0; }", "&(table[1])"),
])
def test_a_table_only_read_through_plain_pointers_is_read_only_data(helper, arg):
    mp, text = port(READ_THROUGH % (helper, arg))
    (table,) = [g for g in mp.module.globals if g.name == "table"]
    assert table.kind is GlobalKind.READONLY_DATA, table.kind
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


@pytest.mark.parametrize("helper, arg", [
    ("static long use(D *d) { d->n++; return d->n; }", "&table[0]"),
    ("static long use(D *d) { d[1].n = 2; return 0; }", "table"),
    ("static long use(D *d) { *d = d[1]; return 0; }", "table"),
    ("static long use(D *d) { strcpy(d->tag, \"y\"); return 0; }", "&table[0]"),  # an array field decays
    ("static long use(D *d) { char *t = d->tag; t[0] = 'y'; return 0; }", "&table[0]"),
    ("static D *saved;\nstatic void keep(D *p) { saved = p; }\nstatic long use(D *d) { keep(d); return 0; }",
     "&table[0]"),  # stored by another function
    ("static long use(D *d) { D *q = d; q->n = 3; return 0; }", "table"),  # copied to a local
    ("static long use(D *d) { long *p = &d->n; *p = 4; return 0; }", "&table[0]"),
    ("static long use(D *d) { return (long)d; }", "&table[0]"),  # cast: where it goes is unknown
    ("static long use(D *d) { (d + 1)->n = 2; return 0; }", "table"),  # arithmetic points elsewhere in it
    ("static long use(D *d) { D *q; q = (0, d); q->n = 2; return 0; }", "table"),  # a comma's value
    ("static long use(D *d) { D *d2 = NULL; { D *d = d2; (void)d; } return d->n; }", "&table[0]"),  # shadowed
])
def test_a_table_written_through_a_parameter_is_not_read_only(helper, arg):
    mp, text = port(READ_THROUGH % (helper, arg))
    (table,) = [g for g in mp.module.globals if g.name == "table"]
    assert table.kind is not GlobalKind.READONLY_DATA, helper


DEBUG_FLAG = HEADER + """
#include <stdlib.h>
static int debug;
%s
static PyObject *f(PyObject *m, PyObject *a) { return PyBool_FromLong(debug); }
static PyMethodDef one_method[] = {{"f", f, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, one_method};
PyMODINIT_FUNC
PyInit_m(void)
{
    %s
    return PyModule_Create(&def);
}
"""


@pytest.mark.parametrize("extra, init", [
    ("", "if (getenv(\"M_DEBUG\")) debug = 1;"),
    ("", "if (getenv(\"M_DEBUG\") != NULL && getenv(\"M_DEBUG\")[0] == '1') { debug = 1; }"),
    ("#define TRACE(x) do { if (debug) puts(x); } while (0)", "debug = 1; TRACE(\"init\");"),
    ("#ifdef NEVER_DEFINED_HERE\nstatic void g(void) { if (debug) abort(); }\n#endif", "if (getenv(\"D\")) debug = 1;"),
])
def test_a_flag_set_at_init_from_the_environment_stays_process_global(extra, init):
    mp, text = port(DEBUG_FLAG % (extra, init))
    (debug,) = [g for g in mp.module.globals if g.name == "debug"]
    assert debug.kind is GlobalKind.PROCESS_CONSTANT, debug.kind
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


@pytest.mark.parametrize("extra, init", [
    # from a Python object, which differs between interpreters
    ("", "if (PyObject_IsTrue(PySys_GetObject(\"flags\"))) debug = 1;"),
    # from another global
    ("static int verbose = 1;", "if (verbose) debug = 1;"),
    # two values
    ("", "if (getenv(\"A\")) debug = 1; if (getenv(\"B\")) debug = 2;"),
    # set later, from Python
    ("static PyObject *on(PyObject *m, PyObject *a) { debug = 1; Py_RETURN_NONE; }\n"
     "static PyMethodDef more[] = {{\"on\", on, METH_NOARGS, NULL}, {NULL}};",
     "if (getenv(\"A\")) debug = 1; (void)more;"),
    # a macro body changes it
    ("#define TOGGLE() (debug = !debug)", "if (getenv(\"A\")) debug = 1; TOGGLE();"),
    # an unread branch changes it
    ("#ifdef NEVER_DEFINED_HERE\nstatic void g(void) { debug++; }\n#endif", "if (getenv(\"A\")) debug = 1;"),
    # in a loop over other data
    ("", "int i; for (i = 0; i < 3; i++) if (getenv(\"A\")) debug = 1;"),
])
def test_a_flag_other_data_sets_is_not_process_global(extra, init):
    mp, text = port(DEBUG_FLAG % (extra, init))
    (debug,) = [g for g in mp.module.globals if g.name == "debug"]
    assert debug.kind is not GlobalKind.PROCESS_CONSTANT, (extra, init)


UNREFERENCED = HEADER + """
static PyObject *cb;
%s
long poll_locked(long t) { return cb != NULL ? t : -t; }
static PyObject *f(PyObject *m, PyObject *a) { Py_XSETREF(cb, Py_NewRef(a)); Py_RETURN_NONE; }
""" + plain_init("METH_O")


@pytest.mark.parametrize("macro", [
    "",
    # pastes that cannot make its name: a chain with a fixed start, a fixed end
    "#define F(card, type) long upb_p##card##type##_bt(void);",
    "#define G(name) name ## _impl",
])
def test_a_function_nothing_calls_takes_the_state_as_a_parameter(macro):
    mp, text = port(UNREFERENCED % macro)
    assert "long poll_locked(m_state *state, long t)" in text, text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


@pytest.mark.parametrize("macro", [
    "#define CALL(name) name ## _locked(1)",  # a paste that can make its name
    "#define CALL2(a, b) po ## a ## _ ## b",  # so can a chain
    "#define JOIN(a, b) a ## b",  # a paste of two arguments can make any name
])
def test_a_function_a_macro_may_paste_keeps_its_signature(macro):
    mp, text = port(UNREFERENCED % macro)
    assert "long poll_locked(long t)" in text
    assert mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_a_type_moved_above_an_existing_state_struct_in_a_header_lands_on_its_line():
    header = ("#ifndef M_H\n#define M_H\n#include <Python.h>\n/* padding that makes offsets in the two files differ, so that a line\n"
              " * start read in the wrong file falls inside this comment */\n"
              "// The module's state, kept since the first release.\n"
              "typedef struct {\n    PyObject *error;\n} m_state;\nlong other(m_state *s);\n#endif\n")
    c = ("#include \"m.h\"\n"
         "typedef struct { long size; } Bits;\n"
         "static Bits bits;\n"
         "static PyObject *f(PyObject *m, PyObject *a) { m_state *s = PyModule_GetState(m);\n"
         "    bits.size += other(s); return PyLong_FromLong(bits.size); }\n"
         "static PyMethodDef methods[] = {{\"f\", f, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};\n"
         "static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, \"m\", NULL, sizeof(m_state), methods};\n"
         "PyMODINIT_FUNC\nPyInit_m(void)\n{\n    return PyModule_Create(&def);\n}\n")
    other = "#include \"m.h\"\nlong other(m_state *s) { return s->error != NULL; }\n"
    result = port_files([("m.c", c.encode()), ("m.h", header.encode()), ("a.c", other.encode())])
    (mp,) = result.modules
    new_header = result.new_text["m.h"].decode()
    assert "// The module's state, kept since the first release.\n" in new_header, new_header
    assert "typedef struct { long size; } Bits;\n\n" in new_header, new_header
    assert new_header.index("Bits;") < new_header.index("} m_state;")


def test_a_loader_hook_nothing_calls_keeps_its_signature():
    mp, text = port(UNREFERENCED.replace("long poll_locked(long t)",
                                         "__attribute__((constructor)) long poll_locked(long t)") % "")
    assert "poll_locked(long t)" in text
    assert mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


SPEC_IN_HELPER = HEADER + """
static PyObject *Err;
static int T_init(PyObject *self, PyObject *args, PyObject *kw) { PyErr_SetString(Err, "no"); return -1; }
static PyType_Slot T_slots[] = {{Py_tp_init, T_init}, {0, NULL}};
static PyType_Spec T_spec = {"m.T", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, T_slots};
%s
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err = PyErr_NewException("m.Err", NULL, NULL);
    %s
    return m;
}
"""


def test_a_type_a_helper_makes_and_returns_is_made_with_the_module():
    mp, text = port(SPEC_IN_HELPER % ("static PyObject *make_t(void) { PyObject *t = PyType_FromSpec(&T_spec); "
                                      "return t; }", "PyModule_AddObject(m, \"T\", make_t());"))
    assert "PyType_FromModuleAndSpec(" in text and "make_t(m)" in text, text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_a_type_a_helper_makes_and_does_not_return_is_not_a_spec_maker():
    mp, text = port(SPEC_IN_HELPER % ("static int add_t(PyObject *m) { PyObject *t = PyType_FromSpec(&T_spec); "
                                      "if (t == NULL) return -1; return PyModule_AddObject(m, \"T\", t); }",
                                      "add_t(m);"))
    assert "add_t(m)" in text and "add_t(m, m)" not in text, text


@pytest.mark.parametrize("declaration, left", [
    ("PyObject *m = PyModule_Create(&def), *extra;", "PyObject *extra;"),
    ("PyObject *extra = NULL, *m = PyModule_Create(&def);", "PyObject *extra = NULL;"),
])
def test_a_module_created_in_a_declaration_of_several_loses_only_its_declarator(declaration, left):
    c = HEADER + """
static PyObject *Err;
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    %s
    if (m == NULL)
        return NULL;
    extra = PyErr_NewException("m.Err", NULL, NULL);
    Err = extra;
    return m;
}
""" % declaration
    mp, text = port(c)
    assert mp.status == "ported", mp.status
    assert left in text and "PyModule_Create" not in text, text


def test_a_function_only_another_build_names_keeps_its_signature():
    # The branch for other compilers names it (porter reads that as its address taken).
    mp, text = port(UNREFERENCED % "#ifdef __GNUC__\nstatic long other;\n#else\n"
                                   "static long (*hook)(long) = poll_locked;\n#endif")
    assert "long poll_locked(long t)" in text


def test_find_module_of_a_def_in_a_variable_is_not_this_modules_lookup():
    # A test helper that looks up whatever def it is given: not this module's own lookup, so it
    # is neither rewritten nor (in a file of several modules) rewritten once per module.
    functions = ("static PyObject *lookup(PyObject *m, PyObject *a) {\n"
                 "    PyModuleDef *some = PyModule_GetDef(m);\n"
                 "    PyObject *found = PyState_FindModule(some);\n"
                 "    return Py_NewRef(found != NULL ? found : Py_None); }\n")
    mp, text = port(with_method(functions, "lookup", "METH_NOARGS"))
    assert mp.status == "ported", mp.status
    assert "PyState_FindModule(some)" in text


CALLBACK_SLOT = HEADER + """
typedef PyObject *(*conv_fn)(long v);
typedef struct { const char *name; conv_fn conv; } conv_entry;
static PyObject *Err;
static PyObject *conv_err(long v) { PyErr_Format(Err, "bad %%ld", v); return NULL; }
static PyObject *conv_int(long v) { return PyLong_FromLong(v); }
%s
static PyObject *f(PyObject *m, PyObject *a) { long i = PyLong_AsLong(a); %s }
""" + ONE_METHOD % ("f", "f", "METH_O")
TABLE = 'static conv_entry table[] = {{"i", conv_int}, {"e", conv_err}};'


@pytest.mark.parametrize(("decls", "body"), [
    # designated rows
    ('static conv_entry table[] = {{.name = "i", .conv = conv_int}, {.name = "e", .conv = conv_err}};',
     "return table[i].conv(i);"),
    # rows by position, one through an object-like macro naming the function, called through `(*x.f)(...)`
    ('#define conv_ERR conv_err\nstatic conv_entry table[] = {{"i", conv_int}, {"e", conv_ERR}};',
     "return (*table[i].conv)(i);"),
    # assigned, copied, tested
    ("static conv_entry one, two;",
     "if (i) one.conv = conv_err; else one.conv = &conv_int; two.conv = one.conv; "
     "return two.conv != NULL ? two.conv(i) : NULL;"),
    # a field with its own declarator
    ('typedef struct { PyObject *(*own)(long v); } own_entry;\n'
     'static own_entry table[] = {{conv_int}, {(void *)&conv_err}};', "return table[i].own(i);"),
])
def test_functions_kept_in_the_module_s_own_function_pointer_fields_take_the_state(decls, body):
    c = CALLBACK_SLOT % (decls, body)
    mp, text = port(c)
    assert "static PyObject *conv_err(m_state *state, long v)" in text, text
    assert "static PyObject *conv_int(m_state *state, long v)" in text  # one signature for all
    assert "(state, i)" in text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert_compiles(mp, c, text)


@pytest.mark.parametrize(("decls", "body", "why"), [
    # the typedef is a parameter's type: what it holds is not followed
    (TABLE + "\nstatic PyObject *call(conv_fn fn, long v) { return fn(v); }",
     "return call(table[i].conv, i);", "uses the type conv_fn for something other"),
    # a macro body names the field
    (TABLE + "\n#define CONVERT(e, v) ((e).conv(v))", "return CONVERT(table[i], i);", "a macro body names its field conv"),
    # the field's value goes somewhere porter does not follow
    (TABLE + "\nstatic PyObject *apply(PyObject *(*g)(long), long v) { return g(v); }",
     "return apply(table[i].conv, i);", "in a way porter does not follow"),
    # a function that is not the module's is stored there too
    ('static conv_entry table[] = {{"i", PyLong_FromLong}, {"e", conv_err}};', "return table[i].conv(i);",
     "PyLong_FromLong() is stored in it too"),
    # code outside the project gets the table
    (TABLE, 'if (i < 0) return PyCapsule_New(table, "m.table", NULL); return table[i].conv(i);',
     "PyCapsule_New() at m.c"),
    # the function's address goes elsewhere too
    (TABLE + "\nstatic void *keep = (void *)&conv_err;", "return table[i].conv(i);", "also passed elsewhere"),
])
def test_a_function_pointer_field_porter_cannot_follow_keeps_its_signature(decls, body, why):
    mp, text = port(CALLBACK_SLOT % (decls, body))
    assert "static PyObject *conv_err(long v)" in text
    assert mp.posture.value != "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    (item,) = [it for it in mp.items if it.subject == "Err" and it.code == "unreachable-function"]
    assert why in item.message, item.message


GETSET_CLOSURE = HEADER + """
static PyObject *ErrA;
static PyObject *ErrB;
typedef struct { PyObject_HEAD } Obj;
static PyObject *get_exc(PyObject *self, void *closure) { %s }
static PyGetSetDef getsets[] = {{"A", get_exc, NULL, NULL, &ErrA}, {"B", get_exc, NULL, NULL, %s}, {NULL}};
static PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "m.T", .tp_basicsize = sizeof(Obj),
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = PyType_GenericNew, .tp_getset = getsets};
""" + INIT % """    ErrA = PyErr_NewException("m.A", NULL, NULL);
    ErrB = PyErr_NewException("m.B", NULL, NULL);
    if (PyType_Ready(&T) < 0 || PyModule_AddObjectRef(m, "T", (PyObject *)&T) < 0) return NULL;"""
READ_CLOSURE = "return Py_NewRef(*(PyObject **)closure);"


def test_a_getset_closure_naming_a_global_becomes_its_offset_in_the_state():
    c = GETSET_CLOSURE % (READ_CLOSURE, "(void *)&ErrB")
    mp, text = port(c)
    assert "(void *)offsetof(m_state, ErrA)}" in text and "(void *)offsetof(m_state, ErrB)}" in text
    assert "*(PyObject **)((char *)state + (Py_ssize_t)closure)" in text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert_compiles(mp, c, text)


@pytest.mark.parametrize(("body", "other"), [
    # the closure is used another way too
    ("return closure != NULL ? Py_NewRef(*(PyObject **)closure) : NULL;", "&ErrB"),
    # another row of the getter has a closure that is no global's address
    (READ_CLOSURE, "NULL"),
])
def test_a_getset_closure_the_getter_does_not_only_dereference_keeps_the_global(body, other):
    mp, text = port(GETSET_CLOSURE % (body, other))
    assert "&ErrA}" in text and "offsetof" not in text
    assert "used-at-file-scope" in [it.code for it in mp.items if it.subject == "ErrA"]


PACED = HEADER + """
static void flush_all(void) { }
static void hook(void *p)
{
    %s
    %s
}
static PyObject *f(PyObject *m, PyObject *a) { return PyCapsule_New(m, "m.x", (PyCapsule_Destructor)hook); }
""" + plain_init("METH_NOARGS")


@pytest.mark.parametrize("body", [
    "if (++count == 100) { flush_all(); count = 0; }",
    "count++; if (count >= 100) { flush_all(); count = 0; }",
    "count += 1; if (100 < count) { count = 0; flush_all(); }",
])
def test_a_counter_that_only_paces_work_in_a_callback_becomes_atomic(body):
    c = PACED % ("static unsigned long count = 0;", body)
    mp, text = port(c)
    assert "#if defined(_MSC_VER) && !defined(__clang__)\n    static unsigned long count = 0;\n#else\n" \
           "    static _Atomic unsigned long count = 0;\n#endif" in text, text
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
    assert mp.posture.condition == "(defined(_MSC_VER) && !defined(__clang__))"
    assert not [it for it in mp.items if not it.done and it.subject == "count"]
    assert_compiles(mp, c, text)


def test_a_pacing_counter_only_glibc_builds_declare_is_atomic_in_every_build():
    """Declared under `#ifdef __GLIBC__` (a binding's malloc_trim pacing), plain only where
    MSVC compiles: no build is both, so the claim is a GIL per interpreter with no condition."""
    c = PACED.replace("static void hook(void *p)\n{\n    %s\n    %s\n}",
                      "static void hook(void *p)\n{\n#ifdef __GLIBC__\n    %s\n    %s\n#endif\n}") % (
        "static unsigned long count = 0;", "if (++count == 100) { flush_all(); count = 0; }")
    mp, text = port(c)
    assert "static _Atomic unsigned long count = 0;" in text, text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED" and mp.posture.condition is None, mp.posture
    assert "{Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED}" in text
    assert "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED" not in text
    assert_compiles(mp, c, text)


@pytest.mark.parametrize(("condition", "never"), [
    ("(defined(__GLIBC__)) && (defined(_MSC_VER) && !defined(__clang__))", True),
    ("defined(__APPLE__) && defined(_WIN32)", True),
    ("defined(_MSC_VER) && !defined(__clang__)", False),
    ("defined(__GLIBC__) || defined(_MSC_VER)", False),  # a disjunction is not read
    ("defined(__linux__) && !defined(_WIN32)", False),
])
def test_a_condition_that_asks_for_two_platforms_holds_in_no_build(condition, never):
    from porter.conditions import holds_in_no_build

    assert holds_in_no_build(condition) is never


@pytest.mark.parametrize(("declaration", "body"), [
    ("static unsigned long count = 0;", "if (++count == 100) { count = 0; } printf(\"%%lu\", count);"),  # passed on
    ("static unsigned long count = 0;", "unsigned long *p = &count; (*p)++;"),  # its address
    ("static unsigned long count = 0;", "static unsigned long limit = 9; if (++count == limit) count = 0;"),
    ("static unsigned long count = 0, other;", "if (++count == 100) count = 0;"),  # not alone on its line
    ("static double count = 0;", "if (++count == 100) count = 0;"),  # not an integer
])
def test_a_counter_whose_value_goes_elsewhere_stays_a_plain_kept_global(declaration, body):
    mp, text = port(PACED % (declaration, body))
    assert "_Atomic" not in text
    assert [it for it in mp.items if not it.done and it.subject == "count"]


def test_a_callback_registered_by_a_call_whose_result_is_kept_is_not_called_back_during_the_call():
    """`capsule = PyCapsule_New(data, name, destructor)` with a local `data` handed to free()
    afterwards: the capsule keeps the destructor and calls it whenever it dies, not while the
    calls handed `data` run, so no thread-local its caller publishes reaches it."""
    c = with_method("""static void destroy(PyObject *capsule)
{
    void *data = PyCapsule_GetPointer(capsule, "m.b");
    if (data == NULL) PyErr_WriteUnraisable(Err);
    free(data);
}
static PyObject *make(PyObject *m, PyObject *unused)
{
    char *data = malloc(8);
    PyObject *capsule;
    if (data == NULL) return PyErr_NoMemory();
    capsule = PyCapsule_New(data, "m.b", destroy);
    if (capsule == NULL) free(data);
    return capsule;
}
""", "make", "METH_NOARGS")
    mp, text = port(c)
    assert "m_callback_state" not in text
    assert "unreachable-function" in [it.code for it in mp.items if it.subject == "Err"]


def test_a_getset_closure_naming_a_static_type_keeps_it_static():
    """A static type becomes a pointer in the state: the getter's `*(PyTypeObject *)closure`
    would read the pointer as the type."""
    c = GETSET_CLOSURE.replace("&ErrA}", "&T}").replace("static PyObject *ErrA;", "static PyObject *ErrA;\nstatic PyTypeObject T;")
    mp, text = port(c % ("return Py_NewRef((PyObject *)&*(PyTypeObject *)closure);", "&ErrB"))
    assert "&T}" in text and "offsetof(m_state, T)" not in text


def test_a_callback_slot_declared_in_a_header_the_package_installs_keeps_its_signature():
    header = "#include <Python.h>\ntypedef PyObject *(*conv_fn)(long v);\ntypedef struct { const char *name; conv_fn conv; } conv_entry;\n"
    c = CALLBACK_SLOT.replace("typedef PyObject *(*conv_fn)(long v);\ntypedef struct { const char *name; conv_fn conv; } conv_entry;\n",
                              '#include "m.h"\n') % (TABLE, "return table[i].conv(i);")
    setup = b"from setuptools import setup, Extension\nsetup(name='m', headers=['m.h'], ext_modules=[Extension('m', ['m.c'])])\n"
    result = port_files([("m.c", c.encode()), ("m.h", header.encode())],
                        companions=Companions(build_files=(("setup.py", setup),)))
    (mp,) = result.modules
    assert "m.h" in mp.module.public_headers
    text = result.new_text.get("m.c", c.encode()).decode()
    assert "static PyObject *conv_err(long v)" in text
    (item,) = [it for it in mp.items if it.subject == "Err" and it.code == "unreachable-function"]
    assert "a header the package installs" in item.message


@pytest.mark.parametrize(("conv_int", "split"), [
    # unmarked, and the project only stores it: exported for ctypes or dlsym callers
    ("PyObject *conv_int(long v)", True),
    # marked hidden like the project's other shared functions, through the macro or spelled out
    ("HIDDEN PyObject *conv_int(long v)", False),
    ('__attribute__((visibility("hidden"))) PyObject *conv_int(long v)', False),
    # static: not exported at all
    ("static PyObject *conv_int(long v)", False),
])
def test_a_function_exported_on_purpose_keeps_its_signature_for_outside_callers(conv_int, split):
    c = ('#define HIDDEN __attribute__((visibility("hidden")))\n' + CALLBACK_SLOT).replace(
        "static PyObject *conv_int(long v)", conv_int).replace(
        "static PyObject *conv_err(long v)", "HIDDEN PyObject *conv_err(long v)") % (TABLE, "return table[i].conv(i);")
    mp, text = port(c)
    assert "conv_err(m_state *state, long v)" in text, text
    # The slot holds the function that takes the state; the exported one finds it.
    assert ('{"i", conv_int_impl}' in text and "PyObject *conv_int_impl(m_state *state, long v)" in text
            and "\nconv_int(long v)\n{\n    m_state *state = m_state_of_this_interpreter();" in text) is split, text
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert_compiles(mp, c, text)


def test_a_function_exported_on_purpose_that_cannot_say_it_failed_keeps_the_slot_as_it_is():
    """An exported function returning `long` has no NULL to return when the calling interpreter
    did not import the module: it is not split, and its slot stays as it is."""
    c = ('#define HIDDEN __attribute__((visibility("hidden")))\n' + CALLBACK_SLOT).replace(
        "static PyObject *conv_err(long v)", "HIDDEN PyObject *conv_err(long v)").replace(
        "%s", "long exported_twice(long v) { return table[0].conv(v) != NULL ? 2 * v : 0; }\n%s", 1)
    c = c.replace("PyObject *(*conv_fn)(long v)", "PyObject *(*conv_fn)(long v)") % (TABLE, "return table[i].conv(i);")
    mp, text = port(c)
    assert "long exported_twice(long v)" in text
    (item,) = [it for it in mp.items if it.subject == "Err" and it.code == "unreachable-function"]
    assert "never calls it by name" in item.message, item.message


def test_an_unmarked_function_the_project_calls_by_name_only_forgot_its_marker():
    c = ('#define HIDDEN __attribute__((visibility("hidden")))\n' + CALLBACK_SLOT).replace(
        "static PyObject *conv_err(long v)", "PyObject *conv_err(long v)").replace(
        "static PyObject *conv_int(long v)", "HIDDEN PyObject *conv_int(long v)") % (
        TABLE, "if (i < 0) return conv_err(i); return table[i].conv(i);")
    mp, text = port(c)
    assert "PyObject *conv_err(m_state *state, long v)" in text


@pytest.mark.parametrize("marker", ["PyAPI_FUNC(PyObject *)", "Py_EXPORTED_SYMBOL PyObject *",
                                    '__attribute__((visibility("default"))) PyObject *'])
def test_a_function_marked_for_export_is_split_for_its_outside_callers(marker):
    c = CALLBACK_SLOT.replace("static PyObject *conv_int(long v)", f"{marker} conv_int(long v)") % (
        TABLE, "return table[i].conv(i);")
    mp, text = port(c)
    assert '{"i", conv_int_impl}' in text and "m_state *state = m_state_of_this_interpreter();" in text, text


# -- Python entered on threads that never ran the module's interpreter (analyze.foreign_threads)

THREAD_MODULE = HEADER + """#include <pthread.h>
static void call_back(PyObject *callback) {
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallNoArgs(callback);
    Py_XDECREF(r);
    PyGILState_Release(g);
}
static void *worker(void *arg) { call_back((PyObject *)arg); return NULL; }
static PyObject *f(PyObject *self, PyObject *arg) {
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    %s
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
""" + plain_init("METH_O")


def _foreign(mp) -> list:
    return [f for f in mp.module.findings if f.code == "foreign-thread"]


@pytest.mark.parametrize("start", [
    "if (pthread_create(&t, NULL, worker, arg) == 0) pthread_join(t, NULL);",
    "if (pthread_create(&t, NULL, &worker, arg) == 0) pthread_join(t, NULL);",
    "if (pthread_create(&t, NULL, (void *(*)(void *))worker, arg) == 0) pthread_join(t, NULL);",
    "(void)t; PyThread_start_new_thread((void (*)(void *))worker, arg);",
    # A portable library's starter (GLib's), declared here as the library's header would.
    "(void)t; extern void *g_thread_new(const char *, void *(*)(void *), void *);\n"
    "    g_thread_new(\"player\", worker, arg);",
])
def test_python_entered_on_a_thread_the_module_starts_claims_a_shared_gil(start):
    mp, text = port(THREAD_MODULE % start)
    (found,) = _foreign(mp)
    assert found.function == "call_back" and "worker()" in found.message
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
    assert any("call_back() enters Python" in r for r in mp.posture.reasons)
    # The blocker replaces the risk at that call; the Release stays a risk.
    gilstate = [f for f in mp.module.findings if f.code == "gilstate"]
    assert [f.message.split("(")[0] for f in gilstate] == ["PyGILState_Release"]
    assert_compiles(mp, THREAD_MODULE % start, text)


def test_a_thread_that_never_enters_python_keeps_a_gil_per_interpreter():
    c = THREAD_MODULE.replace("static void *worker(void *arg) { call_back((PyObject *)arg); return NULL; }",
                              "static void *worker(void *arg) { return arg; }")
    c = c.replace("Py_RETURN_NONE;\n}\n", "call_back(arg);\n    Py_RETURN_NONE;\n}\n", 1)
    mp, _ = port(c % "if (pthread_create(&t, NULL, worker, arg) == 0) pthread_join(t, NULL);")
    assert not _foreign(mp)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"


def test_a_callback_made_while_the_call_waits_stays_a_risk_not_a_blocker():
    """qsort() calls back on the calling thread, whose last thread state is this interpreter's."""
    c = THREAD_MODULE.replace("static void *worker(void *arg) { call_back((PyObject *)arg); return NULL; }",
                              "static int compare(const void *a, const void *b) { call_back(Py_None); return 0; }")
    mp, _ = port(c % "int v[2] = {1, 2}; (void)t; qsort(v, 2, sizeof(int), compare);")
    assert not _foreign(mp)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    (risk,) = [f for f in mp.module.findings if f.code == "gilstate" and "Ensure" in f.message]
    assert "no C library calls it from a thread of its own" in risk.message


@pytest.mark.parametrize("probe", [
    "PyThreadState *ts = PyGILState_GetThisThreadState();\n    if (ts == NULL) { fresh = 1; }",
    "if (!PyGILState_GetThisThreadState()) { fresh = 1; }",
    "PyThreadState *ts;\n    ts = PyGILState_GetThisThreadState();\n    if (ts != NULL) { fresh = 0; }",
])
def test_code_written_for_threads_without_a_thread_state_claims_a_shared_gil(probe):
    """A trampoline that prepares for a thread with no Python thread state (a libffi-style
    callback from any C thread): porter sees no thread start, but the code says it."""
    c = HEADER + """static void trampoline(void *data) {
    PyGILState_STATE g;
    int fresh = 0;
    %s
    (void)fresh;
    g = PyGILState_Ensure();
    Py_XDECREF(PyObject_CallNoArgs((PyObject *)data));
    PyGILState_Release(g);
}
static void (*registered)(void *);
static PyObject *f(PyObject *self, PyObject *arg) {
    registered = trampoline;
    Py_RETURN_NONE;
}
""" % probe + plain_init("METH_O")
    mp, _ = port(c)
    (found,) = _foreign(mp)
    assert found.function == "trampoline" and "no Python thread state yet" in found.message
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"


# -- a `static` local table of global addresses, read by subscript only (planning.tables)

STATIC_LOCAL_TABLE = HEADER + """static PyObject *Err1;
static PyObject *Err2;
static int add(PyObject *m, PyObject **slot) { return PyModule_AddObjectRef(m, "E", *slot); }
static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "m", NULL, -1, methods};
PyMODINIT_FUNC
PyInit_m(void)
{
    int i;
    static PyObject **errors[] = {&Err1, &Err2, NULL};
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err1 = PyErr_NewException("m.Err1", NULL, NULL);
    Err2 = PyErr_NewException("m.Err2", NULL, NULL);
    for (i = 0; errors[i] != NULL; i++) {
%s
    }
    return m;
}
"""


def test_a_static_local_table_read_by_subscript_drops_static_and_names_the_state():
    c = STATIC_LOCAL_TABLE % "        if (*errors[i] == NULL || add(m, errors[i]) < 0) return NULL;"
    mp, text = port(c)
    assert "    PyObject **errors[] = {&state->Err1, &state->Err2, NULL};" in text
    assert "static PyObject **errors" not in text
    assert not mp.kept and mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert any(it.done and "errors names Err1, Err2 in its rows: no longer `static`" in it.message
               for it in mp.items)
    assert_compiles(mp, c, text)


@pytest.mark.parametrize("loop", [
    "        if (add(m, &*errors[i]) < 0 || add(m, *&errors[i]) < 0) return NULL;",  # a row's address
    "        errors[i] = &Err1;",  # written
])
def test_a_static_local_table_whose_rows_escape_or_change_keeps_its_globals(loop):
    mp, text = port(STATIC_LOCAL_TABLE % loop)
    assert "static PyObject **errors[] = {&Err1, &Err2, NULL};" in text
    assert {k[1] for k in mp.kept} >= {"Err1", "Err2"}
    assert all(why.code == "used-in-static-initializer" for k, why in mp.kept.items() if k[1].startswith("Err"))


def test_a_callback_a_c_library_runs_on_its_own_thread_claims_a_shared_gil():
    """PortAudio calls a stream callback on its audio thread, whichever thread opened the stream
    (here only when the caller asked for one: `cb ? f : NULL`)."""
    c = HEADER + """typedef void PaStream;
extern int Pa_OpenStream(PaStream **, const void *, const void *, double, unsigned long, unsigned long,
                         int (*)(const void *, void *, unsigned long, const void *, unsigned long, void *), void *);
static int on_audio(const void *in, void *out, unsigned long frames, const void *info, unsigned long flags,
                    void *data) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(PyObject_CallNoArgs((PyObject *)data));
    PyGILState_Release(g);
    return 0;
}
static PyObject *f(PyObject *self, PyObject *arg) {
    PaStream *stream;
    if (Pa_OpenStream(&stream, NULL, NULL, 44100.0, 256, 0, arg != Py_None ? on_audio : NULL, arg) != 0)
        return NULL;
    Py_RETURN_NONE;
}
""" + plain_init("METH_O")
    mp, text = port(c)
    (found,) = _foreign(mp)
    assert found.function == "on_audio" and "a thread of the C library's own (Pa_OpenStream()" in found.message
    assert mp.posture.value == "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
    assert_compiles(mp, c, text)


MEASURED_TABLE = HEADER + """
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define FIRST_OF(a) ((a)[0])
static char *labels[] = {"vol", "bass", "treble"};
static PyObject *
names(PyObject *m, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    size_t i;
    if (out == NULL)
        return NULL;
    for (i = 0; i < %s; i++) {
        PyObject *s = PyUnicode_FromString(labels[i]);
        if (s == NULL || PyList_Append(out, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(s);
    }
    return out;
}
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("names", "names",
                                                                                            "METH_NOARGS")


@pytest.mark.parametrize("measure", ["Py_ARRAY_LENGTH(labels)", "COUNT_OF(labels)", "sizeof(labels) / sizeof(char *)",
                                     "sizeof labels / sizeof labels[0]"])
def test_an_array_only_measured_and_read_is_read_only_data(measure):
    mp, text = port(MEASURED_TABLE % measure)
    (labels,) = [g for g in mp.module.globals if g.name == "labels"]
    assert labels.kind is GlobalKind.READONLY_DATA, (labels.kind, labels.reason)
    assert mp.posture.value == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    assert_compiles(mp, MEASURED_TABLE % measure, text)


def test_a_macro_that_reads_its_argument_is_no_measure():
    """`FIRST_OF(a)` names its parameter outside `sizeof`: the array decays to a pointer a
    callee could write through, as before."""
    mp, _ = port(MEASURED_TABLE.replace("i < %s", "i < 3 && FIRST_OF(labels) != NULL") % ())
    (labels,) = [g for g in mp.module.globals if g.name == "labels"]
    assert labels.kind is not GlobalKind.READONLY_DATA


def test_the_default_metatype_is_no_custom_metaclass():
    c = HEADER + """
typedef struct { PyObject_HEAD } BoxObject;
static PyTypeObject BoxType = {
    PyVarObject_HEAD_INIT(&PyType_Type, 0)
    "m.Box", sizeof(BoxObject), 0,
};
""" + INIT % "    if (PyType_Ready(&BoxType) < 0) return NULL;\n    PyModule_AddObject(m, \"Box\", (PyObject *)&BoxType);"
    mp, text = port(c)
    assert not [f for f in mp.module.findings if f.code == "metaclass"]
    assert "PyType_FromModuleAndSpec" in text


STRING_TABLE_HELPER = HEADER + """
static char *labels[] = {"vol", "bass", "treble"};
static PyObject *first(char **table) { %s }
static PyObject *f(PyObject *m, PyObject *a) { return first(labels); }
""" + ONE_METHOD.replace("    Err = PyErr_NewException(\"m.Err\", NULL, NULL);\n", "") % ("f", "f", "METH_NOARGS")


def test_a_string_table_a_helper_reads_through_a_pointer_to_pointers_is_read_only_data():
    c = STRING_TABLE_HELPER % "return table[0] ? PyUnicode_FromString(table[0]) : NULL;"
    mp, text = port(c)
    (labels,) = [g for g in mp.module.globals if g.name == "labels"]
    assert labels.kind is GlobalKind.READONLY_DATA, (labels.kind, labels.reason)
    assert_compiles(mp, c, text)


@pytest.mark.parametrize("body", ['table[0] = "x"; Py_RETURN_NONE;', '*table = NULL; Py_RETURN_NONE;',
                                  "char **keep = table; (void)keep; Py_RETURN_NONE;"])
def test_a_string_table_a_helper_writes_or_keeps_through_a_pointer_to_pointers_is_not_read_only(body):
    mp, _ = port(STRING_TABLE_HELPER % body)
    (labels,) = [g for g in mp.module.globals if g.name == "labels"]
    assert labels.kind is not GlobalKind.READONLY_DATA


MACRO_DEFINED_METHODS = HEADER + """
typedef struct { PyObject_HEAD long v; } NumObject;
static PyTypeObject NumType;
#define num_alloc() PyObject_New(NumObject, &NumType)
#define UNARY(NAME, OP) \\
static PyObject * \\
num_##NAME(PyObject *self) \\
{ \\
    NumObject *r = num_alloc(); \\
    if (r != NULL) r->v = OP ((NumObject *)self)->v; \\
    return (PyObject *)r; \\
}
UNARY(neg, -)
UNARY(inv, ~)
static PyNumberMethods num_as_number = {.nb_negative = num_neg, .nb_invert = num_inv};
static PyTypeObject NumType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "m.Num", .tp_basicsize = sizeof(NumObject), .tp_as_number = &num_as_number,
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = PyType_GenericNew,
};
""" + INIT % "    if (PyType_Ready(&NumType) < 0) return NULL;\n    PyModule_AddObject(m, \"Num\", (PyObject *)&NumType);"


def test_a_type_named_in_functions_a_macro_defines_says_so():
    """The report says where the use is (a function the macro defines) and why porter leaves it,
    not that a static initialiser names it."""
    mp, _ = port(MACRO_DEFINED_METHODS)
    reason = mp.kept[(None, "NumType")]
    assert reason.code == "in-macro-defined-function", reason
    assert "num_neg()" in reason.message and "`UNARY`" in reason.message, reason.message


def test_a_global_named_in_a_function_body_a_macro_gives_says_which_macro():
    c = HEADER + """
static PyObject *Err;
static int ready;
#define CHECK_READY \\
    if (!ready) { PyErr_SetString(Err, "not ready"); return NULL; }
#define NEEDS_READY_BODY(X) \\
{ \\
    CHECK_READY \\
    return PyLong_FromLong(value_ ## X); \\
}
#define value_answer 42
static PyObject *answer(PyObject *m, PyObject *unused)
NEEDS_READY_BODY(answer)
static PyObject *start(PyObject *m, PyObject *unused) { ready = 1; Py_RETURN_NONE; }
static PyMethodDef methods2[] = {{"answer", answer, METH_NOARGS, NULL}, {"start", start, METH_NOARGS, NULL},
                                 {NULL, NULL, 0, NULL}};
""" + INIT.replace("methods[] = {{NULL, NULL, 0, NULL}};", "unused_methods[] = {{NULL, NULL, 0, NULL}};").replace(
        "-1, methods}", "-1, methods2}") % '    Err = PyErr_NewException("m.Err", NULL, NULL);'
    mp, _ = port(c)
    reason = mp.kept[(None, "ready")]
    assert reason.code == "used-at-file-scope" and "macro `NEEDS_READY_BODY` expands" in reason.message, reason


def _unity_module(name: str) -> str:
    return f"""
typedef struct {{ PyObject_HEAD PyObject *payload; }} {name}Object;
static void {name}_dealloc({name}Object *self) {{ Py_XDECREF(self->payload); PyObject_Free(self); }}
static PyTypeObject {name}Type = {{
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "{name}.T", .tp_basicsize = sizeof({name}Object), .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor){name}_dealloc,
}};
static struct PyModuleDef {name}_def = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, NULL}};
PyMODINIT_FUNC
PyInit_{name}(void)
{{
    if (PyType_Ready(&{name}Type) < 0)
        return NULL;
    return PyModule_Create(&{name}_def);
}}
"""


def test_every_module_of_a_unity_file_reads_its_own_types_slots_as_slots():
    """A function named in a type's initialiser has a slot role there, not an address taken
    (a callback), in whichever module of a unity file owns the type: the initialisers of every
    type of the files are known to each module, not those of the first module read."""
    from porter.pipeline import scan

    c = HEADER + "".join(_unity_module(name) for name in ("first", "second", "third"))
    analysis = scan([("m.c", c.encode())], jobs=1)
    deallocs = {f.name: f for m in analysis.modules for f in m.functions if f.name.endswith("_dealloc")}
    assert sorted(deallocs) == ["first_dealloc", "second_dealloc", "third_dealloc"]
    for f in deallocs.values():
        assert [r.kind.value for r in f.roles] == ["slot"] and f.address_taken == (), f


def _unity_spec_module(name: str) -> str:
    return f"""
static PyObject *{name}_twice(PyObject *self, PyObject *arg) {{ return PyNumber_Add(arg, arg); }}
static PyObject *{name}_spare(PyObject *self, PyObject *arg) {{ return Py_NewRef(arg); }}
static PyMethodDef {name}_type_methods[] = {{{{"twice", {name}_twice, METH_O, NULL}}, {{NULL, NULL, 0, NULL}}}};
static PyMethodDef {name}_unused[] = {{{{"spare", {name}_spare, METH_O, NULL}}, {{NULL, NULL, 0, NULL}}}};
static void {name}_dealloc(PyObject *self) {{ PyObject_Free(self); }}
static PyType_Slot {name}_slots[] = {{
    {{Py_tp_methods, {name}_type_methods}}, {{Py_tp_dealloc, {name}_dealloc}}, {{0, NULL}},
}};
static PyType_Spec {name}_spec = {{"{name}.T", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT, {name}_slots}};
static PyObject *{name}_type;
static struct PyModuleDef {name}_def = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, NULL}};
PyMODINIT_FUNC
PyInit_{name}(void)
{{
    {name}_type = PyType_FromSpec(&{name}_spec);
    if ({name}_type == NULL)
        return NULL;
    return PyModule_Create(&{name}_def);
}}
"""


def test_each_module_of_a_unity_file_gets_the_roles_a_pass_over_every_table_gives(monkeypatch):
    """The roles slot tables and unclaimed method tables give are computed once per file and
    each module takes those of the names it owns: the same facts as reading every table for
    every module."""
    import porter.analyze.project as project
    from porter.facts_json import analysis_to_json
    from porter.pipeline import scan

    c = HEADER + "".join(_unity_spec_module(name) for name in ("first", "second", "third"))
    owned_only = analysis_to_json(scan([("m.c", c.encode())], jobs=1))
    every_table = project.assign_roles

    def with_every_table(*args, **kwargs):
        return every_table(*args[:8], None)

    monkeypatch.setattr(project, "assign_roles", with_every_table)
    assert analysis_to_json(scan([("m.c", c.encode())], jobs=1)) == owned_only
    roles = {f["name"]: f["roles"] for m in owned_only["modules"] for f in m["functions"]}
    assert roles["second_twice"] == ["type-method"] and roles["second_spare"] == ["method"], roles
    assert roles["third_dealloc"] == ["slot:tp_dealloc"], roles
