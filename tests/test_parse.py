"""The parser: stand-ins keep offsets, #if groups that break the parse are read as one branch."""

from __future__ import annotations

import pytest

from porter.analyze.project import load_sources
from porter.conditions import Defines, evaluate
from porter.masks import mask_macros
from porter.parse import parse_source

# (id, C text, what must hold) pairs: each case is a sentence.
MASKED = [
    ("PyObject_HEAD without a semicolon is a field",
     b"typedef struct { PyObject_HEAD int x; } T;\n"),
    ("PyVarObject_HEAD_INIT followed by positional slots parses",
     b'static PyTypeObject T = {\n    PyVarObject_HEAD_INIT(NULL, 0)\n    "m.T",\n    0,\n};\n'),
    ("Py_BEGIN_ALLOW_THREADS opens and Py_END_ALLOW_THREADS closes a block",
     b"static void f(void) {\n    Py_BEGIN_ALLOW_THREADS\n    g();\n    Py_END_ALLOW_THREADS\n}\n"),
    ("PyDoc_STRVAR at file scope is a declaration",
     b'PyDoc_STRVAR(doc, "text" "more");\n'),
    ("_Py_IDENTIFIER is a declaration", b"_Py_IDENTIFIER(name);\n"),
    ("Argument Clinic METHODDEF rows parse", b"static PyMethodDef m[] = {\n    FOO_METHODDEF\n    {NULL}\n};\n"),
    ("an #ifdef inside a type initialiser is read as one branch",
     b"static PyTypeObject T = {\n    PyVarObject_HEAD_INIT(NULL, 0)\n    \"m.T\",\n#ifdef X\n    1,\n#else\n    0,\n#endif\n};\n"),
    ("an #if splitting a function header is read as one branch",
     b"#if PY_MAJOR_VERSION >= 3\nPyMODINIT_FUNC PyInit_m(void)\n#else\nvoid initm(void)\n#endif\n{ return 0; }\n"),
    ("a project's attribute macro is blanked",
     b"#define FORCE_INLINE inline __attribute__((always_inline))\nstatic FORCE_INLINE int f(void) { return 1; }\n"),
    ("a project's statement macro without a semicolon gets one",
     b"#define CHECK(x) if (!(x)) { return -1; }\nstatic int f(int a) {\n    CHECK(a)\n    return 0;\n}\n"),
    ("an object-like macro that is a whole function header opens a function",
     b"#define INIT_FUNC PyMODINIT_FUNC CAT(PyInit_, NAME)(void)\nINIT_FUNC {\n    return NULL;\n}\n"),
    ("a generated table with an #ifdef per row parses (its groups are masked before the first parse)",
     b"static struct code codes[] = {\n" + b"".join(
         b"#ifdef E_%d\n    {\"E%d\", E_%d},\n#else\n    {\"E%d\", %d},\n#endif\n" % (i, i, i, i, i) for i in range(200))
     + b"    {NULL, 0}\n};\n"),
    ("a branch ending with a dangling else and the group after it are read as one branch each",
     b"static int f(int fd) {\n    int r;\n#ifdef HAVE_AT\n    if (fd >= 0) {\n        r = g(fd);\n    } else\n"
     b"#endif\n#if defined(__WATCOMC__)\n        r = h();\n#else\n        r = h2();\n#endif\n    return r;\n}\n"),
    ("project macros that open and close blocks stand in for their braces (_tkinter's ENTER_TCL family)",
     b"#define ENTER_LIB \\\n    { int t = 0; \\\n      Py_BEGIN_ALLOW_THREADS \\\n      (void)t;\n"
     b"#define LEAVE_LIB \\\n    Py_END_ALLOW_THREADS }\n#define ENTER_OVERLAP Py_END_ALLOW_THREADS\n"
     b"#define LEAVE_OVERLAP }\n"
     b"static int f(void) {\n    int r;\n    ENTER_LIB\n    r = g();\n    LEAVE_LIB\n    return r;\n}\n"
     b"static int h(void) {\n    int r;\n    ENTER_LIB\n    r = g();\n    ENTER_OVERLAP\n"
     b"    if (r > 1) {\n        r = k();\n    }\n    else {\n        r = 0;\n    }\n    LEAVE_OVERLAP\n    return r;\n}\n"),
    ("a function-like macro that opens a block and one that closes it after a label parse",
     b"#define BEGIN_GUARD(lock) { acquire(lock);\n#define END_GUARD(lock) release(lock); }\n"
     b"static int f(int *l) {\n    int r = 0;\n    BEGIN_GUARD(l)\n    r = g();\n    if (r) goto done;\n"
     b"    r = 1;\ndone:\n    END_GUARD(l)\n    return r;\n}\n"),
    ("a string literal continued with a backslash before CRLF parses",
     b'static const char doc[] =\r\n"first line\\n\\\r\nsecond line";\r\nstatic int after;\r\n'),
]


@pytest.mark.parametrize("text", [c[1] for c in MASKED], ids=[c[0] for c in MASKED])
def test_known_macros_and_conditionals_parse_without_errors(text):
    src = load_sources([("t.c", text)])[0]
    assert src.error_spans == ()
    assert len(src.masked) == len(text)


@pytest.mark.parametrize("text", [c[1] for c in MASKED], ids=[c[0] for c in MASKED])
def test_masks_keep_every_newline_where_it_was(text):
    masked, _ = mask_macros(text)
    assert [i for i, b in enumerate(masked) if b == 10] == [i for i, b in enumerate(text) if b == 10]


def test_what_still_fails_to_parse_is_an_error_span():
    src = parse_source("t.c", b"static int f(void) { return UNKNOWN MACRO 1; }\n")
    assert src.error_spans
    assert src.in_error(src.error_spans[0])


def test_a_table_of_groups_is_masked_before_the_first_parse():
    rows = b"".join(b"#ifdef E_%d\n    {\"E%d\", E_%d},\n#endif\n" % (i, i, i) for i in range(3))
    src = load_sources([("t.c", b"static struct code codes[] = {\n" + rows + b"};\nstatic int f(void) {\n"
                                 b"#ifdef X\n    return 1;\n#endif\n    return 0;\n}\n")])[0]
    # The table's three groups are masked; the group in the function parses as written.
    assert len(src.masked_conditionals) == 3 and src.error_spans == ()


def test_the_masked_group_remembers_the_dropped_branch():
    text = b"static PyTypeObject T = {\n    PyVarObject_HEAD_INIT(NULL, 0)\n#ifdef X\n    \"a\",\n#else\n    \"b\",\n#endif\n};\n"
    src = load_sources([("t.c", text)])[0]
    (mc,) = src.masked_conditionals
    assert mc.kept == 0 and len(mc.dropped) == 1
    assert b'"b"' in text[mc.dropped[0].start:mc.dropped[0].end]


@pytest.mark.parametrize("kind, condition, expected", [
    ("if", b"PY_MAJOR_VERSION >= 3", True),
    ("if", b"PY_VERSION_HEX < 0x03080000", False),
    ("if", b"PY_MAJOR_VERSION >= 3 && defined(HAVE_FOO)", None),
    ("if", b"PY_MAJOR_VERSION < 3 && defined(HAVE_FOO)", False),
    ("if", b"PY_MAJOR_VERSION >= 3 || defined(HAVE_FOO)", True),
    ("ifdef", b"MS_WINDOWS", False),
    ("ifndef", b"Py_TYPE", False),
    ("ifdef", b"HAVE_SOMETHING_CONFIGURED", None),
], ids=lambda v: v if isinstance(v, str) else repr(v))
def test_conditions_are_evaluated_for_cpython_312_on_linux(kind, condition, expected):
    assert evaluate(kind, condition, Defines()) is expected


def test_an_include_guard_is_true_on_entry():
    from porter.preproc import preprocess

    pre = preprocess("g.h", b"#ifndef G_H\n#define G_H\nint x;\n#endif\n")
    assert pre.conditionals[0].branches[0].value is True


def test_a_crlf_continued_string_is_one_token_and_the_code_after_it_is_read():
    from porter.lexer import tokenize

    text = b'#define DOC "one\\\r\ntwo // not a comment"\r\nstatic const char d[] = "a\\\r\nb";\r\nint f(void);\r\n'
    strings = [t.text for t in tokenize(text, directives=False) if t.kind == "string"]
    assert strings == [b'"one\\\r\ntwo // not a comment"', b'"a\\\r\nb"']
    src = load_sources([("t.c", text)])[0]
    assert src.error_spans == ()
    assert src.line_col(text.index(b"int f")) == (5, 1)


def test_a_macro_body_keeps_its_strings_whole_when_expanded():
    from porter.analyze.macros import MacroTable, expand

    text = b'#define DOC "see\\\nhttps://example.org/x"\n#define DEF(d) static const char *doc = d;\n'
    src = load_sources([("t.c", text)])[0]
    table = MacroTable(list(src.pre.macros))
    assert expand(table, "DEF", ["DOC"]) == 'static const char *doc = "seehttps://example.org/x";'
    assert expand(table, "DEF", ["DOC"], nested=False) == "static const char *doc = DOC;"


def test_a_header_macro_names_its_function_as_written():
    from porter.analyze.index import build_index

    text = b"#define INIT_FUNC PyMODINIT_FUNC CAT(PyInit_, NAME)(void)\nINIT_FUNC {\n    return NULL;\n}\n"
    src = load_sources([("t.c", text)])[0]
    assert list(build_index(src).functions) == ["INIT_FUNC"]


def test_a_label_right_before_a_block_closing_macro_parses():
    from porter.parse import parse_source

    text = b"""#include <Python.h>
static void
dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, dealloc)
    if (self == NULL)
        goto done;
    Py_TYPE(self)->tp_free(self);
done:
    Py_TRASHCAN_END
}
static PyTypeObject T = {PyVarObject_HEAD_INIT(NULL, 0) "m.T"};
"""
    src = parse_source("m.c", text)
    assert src.error_spans == ()


def test_a_big_table_of_numbers_and_constant_macros_is_blanked_but_not_one_naming_a_variable():
    row = b"1,2,U,4,U,6,7,8,9,10,\n"
    constants = b"#define UNIINV 0xFFFE\n#define U UNIINV\n"
    blanked = parse_source("t.c", constants + b"static const unsigned short map[] = {\n" + row * 400 + b"};\n")
    assert len(blanked.number_tables) == 1 and blanked.error_spans == ()
    kept = parse_source("t.c", b"static int v;\nstatic const long sizes[] = {\n" + row.replace(b"U", b"v") * 400 + b"};\n")
    assert kept.number_tables == frozenset()


def test_a_block_comment_inside_a_define_body_does_not_end_the_directive():
    """tree-sitter-c ends a `#define` at `/* note */ \\` and reads the rest as code at file scope;
    the parser's copy has such comments blanked, so the body stays a macro's."""
    text = (b"#define CHECK() \\\n    do { \\\n        int a = 1; \\\n        /* then b */ \\\n        int b = a; \\\n"
            b"        (void)b; \\\n    } while (0)\n#define EMPTY /* nothing */\nstatic int f(void) { CHECK(); return 0; }\n")
    src = load_sources([("t.c", text)])[0]
    assert src.error_spans == ()
    kinds = [n.type for n in src.root.children]
    assert kinds == ["preproc_function_def", "preproc_def", "function_definition"], kinds
    assert src.text == text  # only the parser's copy changed
