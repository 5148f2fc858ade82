"""The command line: exit codes, one-line errors, nothing overwritten without asking."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import jsonschema
from conftest import FIXTURES, ROOT
from typer.testing import CliRunner

from porter.cli import app

PORTER = [sys.executable, "-m", "porter"]


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def run(*args, cwd=ROOT) -> Done:
    """porter in this process, through typer's runner; an exception escaping is a test failure."""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def test_scan_prints_a_table_and_exits_0():
    out = run("scan", "fixtures/globals-counter")
    assert out.returncode == 0
    assert "counter" in out.stdout and "single-phase" in out.stdout


def test_scan_piped_is_one_aligned_line_per_row():
    out = run("scan", "fixtures/globals-counter", "fixtures/multiphase-noop")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["file", "module", "init", "static", "types", "globals", "to", "port", "blockers",
                                "unparsed"]
    rows = {line.split()[1]: line for line in lines[2:]}
    assert rows["counter"].split()[:3] == ["fixtures/globals-counter/counter.c", "counter", "single-phase"]
    # Columns start where their headings do.
    assert {line.index("single-phase") if "single-phase" in line else lines[0].index("init")
            for line in lines if "single-phase" in line} == {lines[0].index("init")}
    assert "│" not in out.stdout and "┃" not in out.stdout


def test_scan_json_follows_the_published_schema():
    out = run("scan", "--json", "fixtures")
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    schema = json.loads((ROOT / "porter" / "schema" / "scan-1.schema.json").read_text())
    jsonschema.validate(doc, schema)
    names = {m["name"] for m in doc["modules"]}
    assert {"counter", "already", "vec2"} <= names


def test_a_missing_path_is_a_one_line_usage_error():
    out = run("scan", "no/such/dir")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("porter: error:")


def test_a_file_porter_cannot_read_is_a_row_not_a_stop(tmp_path):
    (tmp_path / "good.c").write_bytes((FIXTURES / "globals-counter" / "counter.c").read_bytes())
    (tmp_path / "bad.c").write_bytes(b"\x00\x01binary")
    out = run("scan", str(tmp_path))
    assert out.returncode == 0
    assert "binary file" in out.stdout and "counter" in out.stdout


def test_port_prints_a_patch_and_chatter_goes_to_stderr():
    out = run("port", "fixtures/globals-counter")
    assert out.returncode == 0
    assert out.stdout.startswith("--- a/fixtures/globals-counter/counter.c")
    assert "counter: compiles" in out.stderr


GIVEN = """#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "vendor_config.h"

static PyObject *Err;

#ifdef WITH_VENDOR
static PyObject *vendored(PyObject *m, PyObject *arg)
{
    PyErr_SetString(Err, VENDOR_NAME);
    return NULL;
}
#endif

static PyMethodDef methods[] = {
#ifdef WITH_VENDOR
    {"vendored", vendored, METH_O, NULL},
#endif
    {NULL, NULL, 0, NULL}
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "given", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_given(void)
{
    PyObject *m = PyModule_Create(&def);
    if (m == NULL)
        return NULL;
    Err = PyErr_NewException("given.Err", NULL, NULL);
    return m;
}
"""


def test_macros_and_include_folders_the_build_computes_are_given_with_D_and_I(tmp_path):
    """What setup.py works out at build time (pg_config --includedir) porter cannot read: -D
    and -I say it, for the #if branches porter reads and for its compile check."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "given.c").write_text(GIVEN)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "vendor_config.h").write_text('#define VENDOR_NAME "v"\n')
    out = run("port", "src/given.c", cwd=tmp_path)
    assert "given: not compiled" in out.stderr and "vendor_config.h" in out.stderr  # nor does the original
    out = run("port", "src/given.c", "-I", "vendor", "-D", "WITH_VENDOR", cwd=tmp_path)
    assert out.returncode == 0 and "given: compiles" in out.stderr
    assert "PyErr_SetString(state->Err, VENDOR_NAME);" in out.stdout  # the branch -D opened was read
    out = run("port", "src/given.c", "-D", "1X", cwd=tmp_path)
    assert out.returncode == 2 and "not a macro name" in out.stderr


def test_the_compile_check_sees_rewritten_headers_included_through_the_project_root(tmp_path):
    """`#include "pkg/shared.h"` (the build adds `-I.`): the check must compile against the
    rewritten header that now holds the state, not the original beside it."""
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "shared.h").write_text(
        "#ifndef SHARED_H\n#define SHARED_H\n#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"
        "extern PyObject *Err;\nPyObject *fail_with(const char *why);\n#endif\n")
    (tmp_path / "pkg" / "helper.c").write_text(
        '#include "pkg/shared.h"\nPyObject *fail_with(const char *why)\n'
        "{\n    PyErr_SetString(Err, why);\n    return NULL;\n}\n")
    (tmp_path / "pkg" / "mod.c").write_text(
        '#include "pkg/shared.h"\nPyObject *Err;\n'
        "static PyObject *boom(PyObject *m, PyObject *a) { return fail_with(\"boom\"); }\n"
        'static PyMethodDef methods[] = {{"boom", boom, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};\n'
        'static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "mod", NULL, -1, methods};\n'
        "PyMODINIT_FUNC\nPyInit_mod(void)\n{\n    PyObject *m = PyModule_Create(&def);\n"
        "    if (m == NULL)\n        return NULL;\n"
        '    Err = PyErr_NewException("mod.Err", NULL, NULL);\n    return m;\n}\n')
    out = run("port", "pkg/mod.c", "pkg/helper.c", "pkg/shared.h", cwd=tmp_path)
    assert "+++ b/pkg/shared.h" in out.stdout and "mod_state" in out.stdout
    assert out.returncode == 0 and "mod: compiles" in out.stderr, out.stderr


def test_an_original_with_a_warning_the_check_makes_an_error_is_still_compared(tmp_path):
    """GCC 14's errors (-Werror=incompatible-pointer-types) in the original are its baseline:
    the port is judged on what it adds."""
    source = (FIXTURES / "globals-counter" / "counter.c").read_text()
    source += "\nstatic void legacy(void) { long n = 0; int *p = &n; (void)p; }\n"
    (tmp_path / "counter.c").write_text(source)
    out = run("port", "counter.c", cwd=tmp_path)
    assert out.returncode == 0 and "counter: compiles" in out.stderr, out.stderr


def test_a_header_porter_writes_is_a_new_file_in_the_patch_and_created_by_apply(tmp_path):
    import shutil

    shutil.copytree(FIXTURES / "multifile-new-state-header" / "src", tmp_path / "src")
    out = run("port", "src", cwd=tmp_path)
    assert out.returncode == 0 and "tapi: compiles" in out.stderr
    assert "--- /dev/null\n+++ b/src/tapi_state.h\n@@ -0,0 +1," in out.stdout
    (tmp_path / "src" / "tapi_state.h").write_text("mine")
    sources = ["src/main.c", "src/device.c", "src/stream.c"]
    out = run("port", *sources, "--apply", cwd=tmp_path)  # a file porter was not given is not overwritten
    assert out.returncode == 2 and "exists" in out.stderr and (tmp_path / "src" / "tapi_state.h").read_text() == "mine"
    out = run("port", "src", cwd=tmp_path)  # one it reads is a name taken
    assert "+++ b/src/tapi_state2.h" in out.stdout
    (tmp_path / "src" / "tapi_state.h").unlink()
    out = run("port", "src", "--apply", cwd=tmp_path)
    assert out.returncode == 0 and "#ifndef TAPI_STATE_H" in (tmp_path / "src" / "tapi_state.h").read_text()
    assert '#include "tapi_state.h"' in (tmp_path / "src" / "device.c").read_text()


def test_cpythons_own_import_machinery_tests_are_kept_as_they_are(tmp_path):
    (tmp_path / "Include").mkdir()
    (tmp_path / "Include" / "patchlevel.h").write_text("#define PY_MAJOR_VERSION 3\n#define PY_MINOR_VERSION 12\n")
    (tmp_path / "Tools" / "clinic").mkdir(parents=True)
    (tmp_path / "Tools" / "clinic" / "clinic.py").write_text("")
    (tmp_path / "Modules").mkdir()
    counter = (FIXTURES / "globals-counter" / "counter.c").read_text()
    (tmp_path / "Modules" / "_testsinglephase.c").write_text(counter)
    (tmp_path / "Modules" / "counter.c").write_text(counter)
    out = run("port", "Modules/_testsinglephase.c", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == "" and "kept as it is" in out.stderr
    out = run("port", "Modules/counter.c", "--no-compile", cwd=tmp_path)
    assert out.returncode == 0 and "+++ b/Modules/counter.c" in out.stdout


def test_port_refuses_to_overwrite_an_output_without_force(tmp_path):
    target = tmp_path / "out.patch"
    target.write_text("mine")
    out = run("port", "fixtures/globals-counter", "-o", str(target))
    assert out.returncode == 2 and target.read_text() == "mine"
    out = run("port", "fixtures/globals-counter", "-o", str(target), "--force")
    assert out.returncode == 0 and target.read_text().startswith("--- a/")


def test_port_apply_rewrites_files_in_place_atomically(tmp_path):
    work = tmp_path / "w"
    (work / "fixtures").mkdir(parents=True)
    src = FIXTURES / "globals-exception"
    dest = work / "fixtures" / "globals-exception"
    dest.mkdir()
    (dest / "errmod.c").write_bytes((src / "errmod.c").read_bytes())
    out = run("port", "fixtures/globals-exception", "--apply", cwd=work)
    assert out.returncode == 0
    assert b"PyModuleDef_Init" in (dest / "errmod.c").read_bytes()
    assert sorted(os.listdir(dest)) == ["errmod.c"]  # no temporary left behind


def test_a_module_porter_cannot_port_exits_1_with_no_patch(tmp_path):
    (tmp_path / "weird.c").write_text(
        "#include <Python.h>\nstatic struct PyModuleDef d = {PyModuleDef_HEAD_INIT, \"weird\"};\n"
        "PyMODINIT_FUNC PyInit_weird(void) { return make_it(&d); }\n")
    out = run("port", str(tmp_path / "weird.c"))
    assert out.returncode == 1 and out.stdout == ""
    assert "weird" in out.stderr


def test_the_report_lists_what_porter_did_and_what_is_left(tmp_path):
    report = tmp_path / "r.md"
    out = run("port", "fixtures/helpers-threading", "--report", str(report))
    assert out.returncode == 0
    text = report.read_text()
    assert "### Done by porter" in text and "fixtures/helpers-threading/chain.c:" in text


def test_debug_tree_and_query_show_what_the_parser_saw():
    out = run("debug", "tree", "fixtures/type-ifdef/featured.c")
    assert out.returncode == 0 and "masked #if group" in out.stdout
    out = run("debug", "query", "fixtures/globals-counter/counter.c", "(function_definition) @fn")
    assert out.returncode == 0 and "@fn" in out.stdout
    out = run("debug", "query", "fixtures/globals-counter/counter.c", "(not_a_node) @x")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_version_and_module_entry_point():
    out = subprocess.run([*PORTER, "--version"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("porter ")


def test_port_reads_the_packages_python_for_class_dict_reads(tmp_path):
    from test_port_rules import MODULE_DESCRIPTOR_TYPE

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    (src / "m.c").write_text(MODULE_DESCRIPTOR_TYPE)
    (src / "other.py").write_text("x = 1\n")
    done = run("port", "src/pkg/m.c", cwd=tmp_path)
    assert done.returncode == 0 and "T_spec" in done.stdout
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("import pkg\nd = vars(Proxy)['__module__']\n")
    kept = run("port", "src/pkg/m.c", "--report", str(tmp_path / "r.md"), cwd=tmp_path)
    assert kept.returncode == 0 and "T_spec" not in kept.stdout
    report = (tmp_path / "r.md").read_text()
    assert "`tests/t.py:2` reads `Proxy.__dict__['__module__']`" in report, report


def test_explain_lists_every_id_and_prints_one():
    listing = run("explain")
    assert listing.returncode == 0 and "gc-support" in listing.stdout and "hot-path-lookup" in listing.stdout
    one = run("explain", "heap-types")
    assert one.returncode == 0 and one.stdout.startswith("heap-types:") and "Fix safety" in one.stdout
    unknown = run("explain", "no-such-step")
    assert unknown.returncode == 2 and "no such id" in unknown.stderr and "Traceback" not in unknown.stderr


def test_every_id_a_fixture_report_uses_can_be_explained():
    from porter.explain import topics
    from porter.inputs import collect_inputs
    from porter.pipeline import port_files

    known = topics()
    used = set()
    for folder in sorted(p for p in FIXTURES.iterdir() if (p / "fixture.toml").exists()):
        inputs = collect_inputs([str(folder)], cwd=ROOT)
        result = port_files([(f.path, f.data) for f in inputs.files])
        for mp in result.modules:
            used |= {item.step for item in mp.items} | {f.code for f in mp.module.findings}
            used |= {why.code for why in mp.kept.values()}
    assert used and used <= set(known), used - set(known)
    # Findings, reasons and failures no fixture triggers are explained too.
    import re

    source = (ROOT / "porter" / "analyze" / "findings.py").read_text()
    codes = set(re.findall(r'"([a-z][a-z-]+)",\s*Severity\.', source))
    assert len(codes) > 8 and codes <= set(known), codes - set(known)
    reasons = {code for path in (ROOT / "porter").rglob("*.py")
               for code in re.findall(r'(?:Reason|fail)\(\s*"([a-z][a-z-]+)"', path.read_text())}
    assert len(reasons) > 30 and reasons <= set(known), reasons - set(known)


def test_an_absolute_path_gives_a_patch_git_apply_takes_at_the_project_root(tmp_path):
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    (proj / "src").mkdir(parents=True)
    elsewhere.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    (proj / "src" / "counter.c").write_bytes((FIXTURES / "globals-counter" / "counter.c").read_bytes())
    out = run("port", str(proj / "src" / "counter.c"), "--no-compile", cwd=elsewhere)
    assert out.returncode == 0 and out.stdout.startswith("--- a/src/counter.c\n+++ b/src/counter.c\n")
    assert f"relative to {proj}" in out.stderr
    applied = subprocess.run(["git", "apply", "--check", "-"], input=out.stdout, text=True, cwd=proj,
                             capture_output=True)
    assert applied.returncode == 0, applied.stderr
    # ... and from a sibling folder through ../
    again = run("port", "../proj/src/counter.c", "--no-compile", cwd=elsewhere)
    assert again.stdout == out.stdout


def test_writes_refuse_folders_fifos_and_symlinks_without_force(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.patch"
    real = tmp_path / "real.patch"
    real.write_text("mine")
    link.symlink_to(real)
    for target, words in ((tmp_path, "is a folder"), (fifo, "is a FIFO"), (link, "is a symbolic link")):
        out = run("port", "fixtures/globals-counter", "--no-compile", "-o", str(target))
        assert out.returncode == 2 and words in out.stderr and out.stderr.count("\n") == 1, out.stderr
    out = run("port", "fixtures/globals-counter", "--no-compile", "-o", str(fifo), "--force")
    assert out.returncode == 2 and "is a FIFO" in out.stderr
    out = run("port", "fixtures/globals-counter", "--no-compile", "-o", str(link), "--force")
    assert out.returncode == 0 and link.is_symlink() and real.read_text().startswith("--- a/")
    same = run("port", "fixtures/globals-counter", "-o", str(tmp_path / "x"), "--report", str(tmp_path / "x"))
    assert same.returncode == 2 and "same file" in same.stderr


def test_a_new_file_gets_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        run("port", "fixtures/globals-counter", "--no-compile", "-o", str(tmp_path / "new.patch"))
    finally:
        os.umask(old)
    assert (tmp_path / "new.patch").stat().st_mode & 0o777 == 0o640


PASTED_INIT = """\
#include <Python.h>
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define INIT_FUNC PyMODINIT_FUNC CAT(PyInit_, MODNAME)(void)
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "demo", NULL, -1, NULL};
INIT_FUNC {
    PyObject *m;
    if (!(m = PyModule_Create(&def)))
        return NULL;
    return m;
}
"""


def test_a_file_naming_pyinit_that_porter_cannot_read_exits_1_with_one_line_saying_why(tmp_path):
    (tmp_path / "demo.c").write_text(PASTED_INIT)
    out = run("port", "demo.c", "--no-compile", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("porter: demo.c: line 6:") and "-D MODNAME=<module>" in out.stderr


def test_the_name_a_header_macro_pastes_comes_from_the_build(tmp_path):
    (tmp_path / "demo.c").write_text(PASTED_INIT)
    given = run("port", "demo.c", "--no-compile", "-D", "MODNAME=demo", cwd=tmp_path)
    assert given.returncode == 0 and "PyInit_demo(void)" in given.stdout
    (tmp_path / "setup.py").write_text(
        'from setuptools import Extension, setup\nsetup(ext_modules=[Extension("pkg.demo", ["demo.c"])])\n')
    built = run("port", "demo.c", "--no-compile", cwd=tmp_path)
    assert built.returncode == 0 and built.stdout == given.stdout


def test_pyinit_named_only_in_code_porter_cannot_read_is_a_failure_and_in_a_comment_nothing(tmp_path):
    (tmp_path / "embed.c").write_text(
        "#include <Python.h>\nextern PyObject *PyInit_spam(void);\n"
        'int main(void) { PyImport_AppendInittab("spam", PyInit_spam); return 0; }\n')
    out = run("port", "embed.c", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("porter: embed.c: line 2 names PyInit_") and out.stderr.count("\n") == 1
    (tmp_path / "embed.c").write_text("/* no PyInit_ here */\nint f(void) { return 0; }\n")
    out = run("port", "embed.c", cwd=tmp_path)
    assert out.returncode == 0 and out.stderr == "porter: no extension module found\n"


def test_a_cpython_trees_makefile_gives_the_compile_check_a_modules_flags(tmp_path):
    from porter.cpython import CPythonTree

    (tmp_path / "Makefile").write_text("MODULE__TKINTER_CFLAGS=-I/usr/include/tcl8.6  -Wno-strict-prototypes "
                                       "-DWITH_APPINIT=1\nMODULE__DECIMAL_CFLAGS=-I$(srcdir)/Modules/_decimal/libmpdec "
                                       "-DCONFIG_64=1\n")
    tree = CPythonTree(tmp_path, (3, 12))
    assert tree.module_flags("_tkinter") == (("/usr/include/tcl8.6",), ("WITH_APPINIT=1",))
    assert tree.module_flags("_decimal") == ((f"{tmp_path}/Modules/_decimal/libmpdec",), ("CONFIG_64=1",))
    assert tree.module_flags("_curses") == ((), ())


def test_cpython_tree_selects_cpython_mode_for_sources_outside_it(tmp_path):
    """`--cpython-tree DIR`: a module copied out of the tree is ported as that tree's (its one
    version: no version guards), as it is when it sits in the tree."""
    tree = ROOT / "fixtures" / "cpython-tree-version"
    source = tmp_path / "_lexermodule.c"
    source.write_bytes((tree / "Modules" / "_lexermodule.c").read_bytes())
    third_party = run("port", "--no-compile", source)
    in_tree = run("port", "--no-compile", "--cpython-tree", tree, source)
    assert third_party.returncode == 0 and in_tree.returncode == 0, (third_party.stderr, in_tree.stderr)
    assert "PY_VERSION_HEX" in third_party.stdout
    assert "PY_VERSION_HEX" not in in_tree.stdout and "Py_mod_exec" in in_tree.stdout


def test_cpython_tree_that_is_not_one_is_a_one_line_error(tmp_path):
    done = run("port", "--cpython-tree", tmp_path, ROOT / "fixtures" / "globals-counter")
    assert done.returncode == 2 and "not a CPython source tree" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_library_in_another_folder_is_linked_by_the_build_next_to_other_modules(tmp_path):
    """Two modules in one folder, and a library in another that setup.py compiles into one of
    them: each module is read with its own files, though the library was not read for its link
    facts (only the files next to a module are)."""
    fixture = ROOT / "fixtures" / "callback-called-by-project-library"
    for part in ("ext", "lib"):
        shutil.copytree(fixture / part, tmp_path / part)
    shutil.copy(ROOT / "fixtures" / "functions-only" / "funcsonly.c", tmp_path / "ext" / "funcsonly.c")
    (tmp_path / "ext" / "extra.c").write_text("int extra_value(void) { return 1; }\n")  # may link with either
    (tmp_path / "setup.py").write_text(
        'from setuptools import Extension, setup\n'
        'setup(ext_modules=[Extension("foldmod", ["lib/fold.c", "ext/foldmod.c"]),\n'
        '                   Extension("funcsonly", ["ext/funcsonly.c"])])\n')
    out = run("port", "ext/foldmod.c", "lib/fold.c", "ext/funcsonly.c", "ext/extra.c", "-j", "2", "--no-compile",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "foldmod_callback_state" in out.stdout  # fold_runs() in lib/fold.c was read with it
