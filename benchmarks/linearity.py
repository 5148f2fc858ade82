"""How scan and port time grow with input size: one big generated module, and unity files.

    python benchmarks/linearity.py [--sizes 0.16,0.32,0.64,1.3,5] [--inits 4,8,16,32,128]
                                   [--repeat 1] [--timeout 900] [--only module|unity]

The C is generated at run time (nothing is stored): a single-phase module made of N units,
each with an instance struct and a static type (dealloc, methods, getset), a cached object, a
lazily filled cache, a mutable counter, a helper and module methods that use them, plus one
module method table and one PyInit that creates everything. A unity file is K such modules,
each with its own definition and `PyInit_`, in one file (a few hundred units in all, like
SWIG or amalgamated outputs). Every point runs `porter scan --json` and `porter port` in a
fresh child process (output to /dev/null); the table shows seconds, peak RSS, and the ratio
to the previous point next to the ratio of input sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _measure import measure

UNIT = """\
typedef struct {{
    PyObject_HEAD
    PyObject *payload;
    long count;
}} {p}ItemObject;

static PyObject *{p}_cached_{i} = NULL;
static PyObject *{p}_lazy_{i} = NULL;
static long {p}_counter_{i} = 0;
static const char *{p}_names_{i}[] = {{"alpha", "beta", "gamma", NULL}};

static PyObject *
{p}_helper_{i}(PyObject *value)
{{
    if ({p}_lazy_{i} == NULL) {{
        {p}_lazy_{i} = PyUnicode_FromString("{p}-{i}");
        if ({p}_lazy_{i} == NULL)
            return NULL;
    }}
    {p}_counter_{i}++;
    return PyTuple_Pack(3, value, {p}_lazy_{i}, {p}_cached_{i});
}}

static void
{p}_item_{i}_dealloc({p}ItemObject *self)
{{
    Py_XDECREF(self->payload);
    PyObject_Free(self);
}}

static PyObject *
{p}_item_{i}_get(PyObject *op, PyObject *Py_UNUSED(ignored))
{{
    {p}ItemObject *self = ({p}ItemObject *)op;
    if (self->payload == NULL)
        Py_RETURN_NONE;
    return {p}_helper_{i}(self->payload);
}}

static PyObject *
{p}_item_{i}_count(PyObject *op, void *closure)
{{
    {p}ItemObject *self = ({p}ItemObject *)op;
    return PyLong_FromLong(self->count + {p}_counter_{i});
}}

static PyMethodDef {p}_item_{i}_methods[] = {{
    {{"get", {p}_item_{i}_get, METH_NOARGS, "get() -> the payload with the unit's cache"}},
    {{NULL, NULL, 0, NULL}}
}};

static PyGetSetDef {p}_item_{i}_getset[] = {{
    {{"count", {p}_item_{i}_count, NULL, "how often", NULL}},
    {{NULL}}
}};

static PyTypeObject {p}_Item{i}_Type = {{
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "{mod}.Item{i}",
    .tp_basicsize = sizeof({p}ItemObject),
    .tp_dealloc = (destructor){p}_item_{i}_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = {p}_item_{i}_methods,
    .tp_getset = {p}_item_{i}_getset,
    .tp_new = PyType_GenericNew,
}};

static PyObject *
{p}_unit_{i}(PyObject *self, PyObject *args)
{{
    PyObject *value;
    if (!PyArg_ParseTuple(args, "O:unit_{i}", &value))
        return NULL;
    if (!PyUnicode_Check(value)) {{
        PyErr_Format(PyExc_TypeError, "unit_{i}: expected str, not %s", {p}_names_{i}[0]);
        return NULL;
    }}
    return {p}_helper_{i}(value);
}}

"""

INIT_HEAD = """\
static PyMethodDef {p}_methods[] = {{
{rows}    {{NULL, NULL, 0, NULL}}
}};

static struct PyModuleDef {p}_module = {{
    PyModuleDef_HEAD_INIT,
    "{mod}",
    NULL,
    -1,
    {p}_methods
}};

PyMODINIT_FUNC
PyInit_{mod}(void)
{{
    PyObject *m = PyModule_Create(&{p}_module);
    if (m == NULL)
        return NULL;
"""

INIT_UNIT = """\
    if (PyType_Ready(&{p}_Item{i}_Type) < 0)
        return NULL;
    {p}_cached_{i} = PyUnicode_FromString("unit {i}");
    if ({p}_cached_{i} == NULL)
        return NULL;
    Py_INCREF(&{p}_Item{i}_Type);
    if (PyModule_AddObject(m, "Item{i}", (PyObject *)&{p}_Item{i}_Type) < 0) {{
        Py_DECREF(&{p}_Item{i}_Type);
        Py_DECREF(m);
        return NULL;
    }}
"""

ROW = '    {{"unit_{i}", {p}_unit_{i}, METH_VARARGS, "unit_{i}(str) -> tuple"}},\n'


def module_text(mod: str, units: int) -> str:
    p = mod
    parts = [UNIT.format(p=p, mod=mod, i=i) for i in range(units)]
    parts.append(INIT_HEAD.format(p=p, mod=mod, rows="".join(ROW.format(p=p, i=i) for i in range(units))))
    parts.extend(INIT_UNIT.format(p=p, i=i) for i in range(units))
    parts.append("    return m;\n}\n\n")
    return "".join(parts)


def big_module(megabytes: float) -> bytes:
    per_unit = len(module_text("big", 2)) / 2
    units = max(1, round(megabytes * 1e6 / per_unit))
    return ("#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n\n" + module_text("big", units)).encode()


def unity_file(inits: int, units_per_init: int, macros_per_init: int = 0) -> bytes:
    """`macros_per_init`: project macros each module brings (an object-like constant and a
    function-like call per pair), defined at the top as generated sources do."""
    macros = "".join(f"#define MOD{k}_CONST_{i} ({i} + {k})\n#define MOD{k}_PACK_{i}(x) PyTuple_Pack(1, x)\n"
                     for k in range(inits) for i in range(macros_per_init // 2))
    body = "".join(module_text(f"mod{k}", units_per_init) for k in range(inits))
    return ("#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n\n" + macros + body).encode()


def timed(argv: list[str], timeout: float) -> tuple[float | None, float]:
    """Wall seconds (None past the timeout) and peak RSS in MiB of the child's process tree."""
    r = measure(argv, timeout)
    if r["wall"] is not None and r["code"] not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {r['code']}:\n{r['stderr']}")
    return r["wall"], r["tree_peak_mib"]


def _ratio(now: float | None, before: float | None) -> str:
    return "-" if now is None or not before else f"{now / before:.2f}"


def _secs(value: float | None) -> str:
    return "timeout" if value is None else f"{value:.2f}"


def table(title: str, points: list[tuple[str, int, dict]]) -> None:
    print(title)
    print(f"{'input':>14}{'MB':>7}{'scan s':>9}{'x':>7}{'port s':>9}{'x':>7}{'scan MiB':>10}{'port MiB':>10}"
          f"{'size x':>8}")
    prev: tuple[str, int, dict] | None = None
    for label, size, r in points:
        scan_x = _ratio(r["scan"], prev[2]["scan"]) if prev else "-"
        port_x = _ratio(r["port"], prev[2]["port"]) if prev else "-"
        size_x = f"{size / prev[1]:.2f}" if prev else "-"
        print(f"{label:>14}{size / 1e6:7.2f}{_secs(r['scan']):>9}{scan_x:>7}{_secs(r['port']):>9}"
              f"{port_x:>7}{r['scan_mib']:10.0f}{r['port_mib']:10.0f}{size_x:>8}")
        prev = (label, size, r)
    print()


def measure_point(path: Path, repeat: int, timeout: float, scan_args: list[str], port_args: list[str]) -> dict:
    porter = [sys.executable, "-m", "porter"]
    best: dict = {"scan": None, "port": None, "scan_mib": 0.0, "port_mib": 0.0}
    for _ in range(repeat):
        for key, argv in (("scan", porter + ["scan", *scan_args, str(path)]),
                          ("port", porter + ["port", *port_args, str(path)])):
            wall, rss = timed(argv, timeout)
            if wall is not None and (best[key] is None or wall < best[key]):
                best[key] = wall
            best[f"{key}_mib"] = max(best[f"{key}_mib"], rss)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.16,0.32,0.64,1.3,5", help="module sizes in MB")
    parser.add_argument("--inits", default="4,8,16,32,128", help="init functions per unity file")
    parser.add_argument("--units-per-init", type=int, default=16)
    parser.add_argument("--macros-per-init", type=int, default=0,
                        help="project macros per module of a unity file (generated sources define hundreds)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--only", choices=("module", "unity"))
    parser.add_argument("--scan-args", default="--json", help="arguments of `porter scan` (default: --json)")
    parser.add_argument("--port-args", default="--no-compile --keep-going",
                        help="arguments of `porter port` (default: --no-compile --keep-going: porter's own work; "
                             "porter before the compile check had neither option and did the same without them)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; best of {args.repeat}; timeout {args.timeout:.0f}s; "
          f"scan {args.scan_args}; port {args.port_args}\n")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "module"):
            points = []
            for mb in (float(x) for x in args.sizes.split(",")):
                path = Path(tmp) / f"big_{mb}.c"
                path.write_bytes(big_module(mb))
                r = measure_point(path, args.repeat, args.timeout, args.scan_args.split(), args.port_args.split())
                points.append((f"module {mb} MB", path.stat().st_size, r))
                print(f"  module {mb} MB: {r}", file=sys.stderr)
            table("one module", points)
        if args.only in (None, "unity"):
            points = []
            for k in (int(x) for x in args.inits.split(",")):
                path = Path(tmp) / f"unity_{k}.c"
                path.write_bytes(unity_file(k, args.units_per_init, args.macros_per_init))
                r = measure_point(path, args.repeat, args.timeout, args.scan_args.split(), args.port_args.split())
                points.append((f"{k} inits", path.stat().st_size, r))
                print(f"  unity {k}: {r}", file=sys.stderr)
            table(f"unity files ({args.units_per_init} units, {args.macros_per_init} macros per init)", points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
