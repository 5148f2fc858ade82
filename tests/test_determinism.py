"""The same input gives the same output, byte for byte, in every process.

tree-sitter hands query captures back in an order that varies (and is not sorted by position),
and Python's string hashing differs between processes: neither may reach porter's output.
"""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import FIXTURES, ROOT

from porter.analyze.project import load_sources
from porter.parse import SourceText, captures
from porter.pipeline import scan


def alternatives(count: int) -> bytes:
    """A module whose functions are each defined twice, in the two branches of an `#ifndef`:
    captures of such a file come back out of order."""
    parts = [b"#include <Python.h>\n"]
    for i in range(count):
        parts.append(b"""
#ifndef WITH_VAR
static PyObject *cached_%d;
static PyObject *
current_%d(PyObject *self, PyObject *args)
{
    static int calls = 0;
    return PyLong_FromLong(calls++);
}
#else
static PyObject *
current_%d(PyObject *self, PyObject *args)
{
    static long other = 1;
    return PyLong_FromLong(other);
}
#endif
""" % (i, i, i))
    rows = b"".join(b'    {"current_%d", current_%d, METH_VARARGS, NULL},\n' % (i, i) for i in range(count))
    parts.append(b"""
static PyMethodDef methods[] = {
%s    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef alt_module = {PyModuleDef_HEAD_INIT, "alt", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_alt(void)
{
    return PyModule_Create(&alt_module);
}
""" % rows)
    return b"".join(parts)


def test_captures_come_in_document_order():
    src = load_sources([("alt.c", alternatives(40))])[0]
    for name, nodes in captures(src.root, "definitions").items():
        starts = [(n.start_byte, -n.end_byte) for n in nodes]
        assert starts == sorted(starts), name


def test_of_two_alternative_definitions_the_first_is_read():
    text = alternatives(40)
    module = scan([("alt.c", text)]).modules[0]
    first = {f"current_{i}": text.index(b"static PyObject *\ncurrent_%d(" % i) for i in range(40)}
    assert {f.name: f.span.start for f in module.functions if f.name in first} == first


def test_scan_json_is_the_same_bytes_in_separate_processes(tmp_path):
    (tmp_path / "alt.c").write_bytes(alternatives(40))
    paths = [str(tmp_path / "alt.c")] + [str(FIXTURES / name) for name in (
        "multifile-module", "type-ifdef", "init-macros", "state-findmodule", "type-protocols",
        "globals-unread-branch-subject")]
    outputs = set()
    for seed in ("0", "1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-m", "porter", "scan", "--json", *paths], cwd=ROOT, env=env,
                              capture_output=True, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_modules_that_share_only_a_small_header_are_read_in_tasks_of_their_own():
    """Tasks are what runs in parallel: a small header several modules include does not join
    them into one task (each parses it); a big one, or a module file another includes, does."""
    from porter.analyze.schedule import _connected

    closures = {"a.c": ["a.c", "small.h"], "b.c": ["b.c", "small.h"], "c.c": ["c.c", "big.h"],
                "d.c": ["d.c", "big.h", "a.c"], "small.h": ["small.h"], "big.h": ["big.h"]}
    paths = list(closures)
    groups = _connected(["a.c", "b.c", "c.c", "d.c"], closures, paths, lambda p: p == "big.h")
    assert sorted(sorted(roots) for roots, _ in groups) == [["a.c", "c.c", "d.c"], ["b.c"]]
    assert dict((tuple(sorted(r)), f) for r, f in groups)[("b.c",)] == ["b.c", "small.h"]


def test_the_files_next_to_a_folders_only_module_are_parsed_once(monkeypatch):
    """They are read for their link facts and, when the module links with them, analysed with
    it: in one task, from one parse."""
    from collections import Counter

    from porter.analyze import schedule

    parsed: Counter[str] = Counter()
    parse_source = schedule.parse_source

    def counting(path, *args, **kwargs):
        parsed[path] += 1
        return parse_source(path, *args, **kwargs)

    monkeypatch.setattr(schedule, "parse_source", counting)
    folder = FIXTURES / "multifile-module"
    files = [(str(p.relative_to(ROOT)), p.read_bytes()) for p in sorted(folder.iterdir()) if p.suffix in (".c", ".h")]
    module = scan(files, jobs=1).modules[0]
    assert set(module.files) == {path for path, _ in files}
    assert parsed == Counter({path: 1 for path, _ in files})


def test_directives_read_on_two_processes_are_those_read_on_one(monkeypatch):
    from porter.analyze import schedule

    items = [(str(p), p.read_bytes()) for p in sorted(FIXTURES.rglob("*.[ch]"))]
    broken = items[3][0]
    real = schedule.preprocess

    def preprocess(path, data, defines=None):
        if path == broken:
            raise ValueError("unreadable directive")
        return real(path, data, defines)

    monkeypatch.setattr(schedule, "preprocess", preprocess)
    monkeypatch.setattr(schedule, "PARALLEL_BYTES", 0)  # the fixtures are small: split them anyway
    alone, split = [], []
    one = schedule.prepare(items, alone, jobs=1)
    two = schedule.prepare(items, split, jobs=2)
    assert two.paths == one.paths == [p for p, _ in items if p != broken]  # in the order given
    assert two.pres == one.pres and two.closures == one.closures
    assert [str(p) for p in split] == [str(p) for p in alone] and len(alone) == 1
    # Files read before (a port's re-parse) keep their place among those read again.
    known = {path: SourceText(path, data, one.pres[path], ()) for path, data in items[::2] if path != broken}
    again = schedule.prepare(items, [], known=known, jobs=2)
    assert again.paths == one.paths and all(again.pres[p] is known[p].pre for p in known)


def test_module_facts_cross_processes_unchanged():
    """Workers send their facts to the parent in pickles (slotted classes by their field values)."""
    import pickle

    paths = [FIXTURES / name for name in ("multifile-module", "state-callback-user-data", "type-protocols")]
    files = [(str(p), p.read_bytes()) for d in paths for p in sorted(d.rglob("*.[ch]"))]
    modules = scan(files, jobs=1).modules
    assert modules and all(m.functions for m in modules)
    for module in modules:
        copy = pickle.loads(pickle.dumps(module, pickle.HIGHEST_PROTOCOL))
        assert copy == module
        assert [type(f) for f in copy.functions] == [type(f) for f in module.functions]


def test_the_facts_a_unity_files_modules_share_cross_processes_as_one_object():
    """A unity file's modules hold one tuple of its macros, type definitions and instance
    structs (SharedFacts): an index on it is built once for all of them, and pickles (a worker's
    results) keep them one object without the indexes."""
    import pickle

    from porter.model import SharedFacts, shared_index

    root = FIXTURES / "unity-two-modules"
    modules = scan([(str(p), p.read_bytes()) for p in sorted(root.glob("*.c"))], jobs=1).modules
    first, second = modules
    assert isinstance(first.instance_structs, SharedFacts) and first.instance_structs is second.instance_structs
    built = []
    by_name = shared_index(first.instance_structs, "test", lambda facts: built.append(1) or {s.name for s in facts})
    assert shared_index(second.instance_structs, "test", lambda facts: built.append(1)) is by_name and built == [1]
    assert first.instance_struct("TagObject") is not None and second.instance_struct("Missing") is None
    one, two = pickle.loads(pickle.dumps(modules, pickle.HIGHEST_PROTOCOL))
    assert (one, two) == (first, second) and one.type_definitions is two.type_definitions
    assert isinstance(one.macros, SharedFacts) and "indexes" not in vars(one.instance_structs)
    assert shared_index((1, 2), "plain", lambda facts: len(facts)) == 2  # a plain tuple: built each time
