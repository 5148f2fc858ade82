"""The side of `porter verify` that runs inside the CPython under test and reports each check as a JSON line."""

# This file is run by path with the target interpreter (3.12+), where porter is
# not installed: it may import the standard library only.  Its checks also run
# inside isolated subinterpreters, which load this same source text.

import gc
import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
import types

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
DETAIL_LIMIT = 500
SKIPPED_IMPORT = "skipped: import failed"

# Importing these for the first time in several isolated subinterpreters crashes
# CPython 3.12.1 and 3.13.0 (double free); importing them here first avoids it.
MAIN_PREIMPORTS = ("datetime", "decimal")


def one_line(text):
    text = " ".join(str(text).split())
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."


class CheckFailed(Exception):
    """A check's own verdict: its message is the whole detail."""


def describe(exc, script=None):
    """'ImportError: message', plus where in the smoke or isolation script it was raised."""
    if isinstance(exc, CheckFailed):
        return one_line(exc)
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if script is not None:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
        if lines:
            text = f"{text.strip()} ({script}:{lines[-1]})"
    return one_line(text)


# -- checks: each returns a detail for success or raises; they run unchanged in
# -- the main interpreter and in subinterpreters.

def check_import(module, builddir):
    # A subinterpreter starts with its own sys.path, without the build dir.
    if builddir not in sys.path:
        sys.path.insert(0, builddir)
    importlib.import_module(module)
    return ""


def check_script(source, filename):
    try:
        exec(compile(source, filename, "exec"), {"__name__": "__main__", "__file__": filename})
    except SystemExit as exc:
        # A script may end itself with sys.exit(); only a non-zero status is a failure.
        if exc.code not in (None, 0):
            raise
    return ""


def module_types(module):
    """(attribute name, type) for the types the module itself defines."""
    import builtins

    found = []
    for name, value in sorted(vars(sys.modules[module]).items()):
        if not isinstance(value, type):
            continue
        owner = value.__dict__.get("__module__", getattr(value, "__module__", None))
        # A tp_name without a dot makes CPython report the type as a builtin.
        if owner == module or (owner == "builtins" and getattr(builtins, value.__name__, None) is not value):
            found.append((name, value))
    return found


def check_heap_types(module):
    found = module_types(module)
    if not found:
        return "no types"
    static = [name for name, value in found if not value.__flags__ & HEAPTYPE]
    if static:
        raise CheckFailed(f"static types (no Py_TPFLAGS_HEAPTYPE): {', '.join(static)}")
    return f"{len(found)} heap type{'s' if len(found) != 1 else ''}"


def run_check(name, *args):
    """(ok, detail) of one check; never raises."""
    script = args[1] if name == "script" else None
    try:
        detail = CHECKS[name](*args)
    except BaseException as exc:  # noqa: BLE001  a failing check is a result
        return False, describe(exc, script)
    return True, detail


def report_check(fd, name, *args):
    """Run one check in a subinterpreter and write its result to the parent's pipe."""
    ok, detail = run_check(name, *args)
    os.write(fd, (json.dumps([ok, detail]) + "\n").encode())
    return ok


def live_counts(module):
    """How many module objects named `module` and types of that module are alive."""
    modules = types_ = 0
    for obj in gc.get_objects():
        if isinstance(obj, types.ModuleType):
            modules += obj.__dict__.get("__name__") == module
        elif isinstance(obj, type):
            types_ += obj.__dict__.get("__module__") == module
    return modules, types_


def load_fresh(module, path):
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def static_type_dicts(module):
    """{(attribute, key): value} of the dicts of the static types the module's namespace holds:
    objects that stay process-global, which no later load may change."""
    import builtins

    shared = {id(v) for v in vars(builtins).values()}
    found = {}
    for name, value in sorted(vars(sys.modules[module]).items()):
        if isinstance(value, type) and not value.__flags__ & HEAPTYPE and id(value) not in shared:
            for key, item in value.__dict__.items():
                found[(name, key)] = item
    return found


def check_second_load(module, path, smoke):
    """A second load of the module (what a re-import or importlib does) must work as the first
    did, and must leave what stays process-global as the first load left it: single-phase init
    ran once per process, and exec runs on every load."""
    first = sys.modules[module]
    before = static_type_dicts(module)
    second = load_fresh(module, path)
    sys.modules[module] = second
    try:
        check_script(smoke, "smoke.py")
    finally:
        sys.modules[module] = first
    after = static_type_dicts(module)
    replaced = sorted(f"{name}.{key}" for (name, key), value in before.items()
                      if (name, key) in after and after[(name, key)] is not value)
    if replaced:
        raise CheckFailed(f"the second load replaced what static types hold: {', '.join(replaced)}")
    return f"smoke passed on a second load; {len(before)} static type attributes kept"


def check_leak(module, path, cycles):
    load_fresh(module, path)  # warm-up: first-load caches are not leaks
    gc.collect()
    before = live_counts(module)
    for _ in range(cycles):
        load_fresh(module, path)
    # Module state, types and their cycles can take more than one pass to go.
    for _ in range(3):
        gc.collect()
    after = live_counts(module)
    detail = f"modules {before[0]}->{after[0]}, types {before[1]}->{after[1]} after {cycles} loads"
    if after[0] > before[0] or after[1] > before[1]:
        raise CheckFailed(detail)
    return detail


# Type flags a port must keep: the ones Python code can observe through behaviour.
# Py_TPFLAGS_HEAPTYPE and Py_TPFLAGS_HAVE_GC change by design; the rest are bookkeeping.
SURFACE_FLAGS = {
    "DISALLOW_INSTANTIATION": 1 << 7, "IMMUTABLETYPE": 1 << 8, "BASETYPE": 1 << 10,
    "METHOD_DESCRIPTOR": 1 << 17, "SEQUENCE": 1 << 5, "MAPPING": 1 << 6,
}
SURFACE_PROBE = "_porter_surface_probe"


def outcome(action):
    """'ok', or the name of the exception the action raised."""
    try:
        action()
    except BaseException as exc:  # noqa: BLE001  the exception is the observation
        return type(exc).__name__
    return "ok"


def type_surface(value):
    def set_attribute():
        setattr(value, SURFACE_PROBE, 1)
        delattr(value, SURFACE_PROBE)

    return {
        "name": value.__name__,
        "qualname": value.__qualname__,
        "module": repr(getattr(value, "__module__", None)),
        "doc": value.__doc__,
        "flags": sorted(name for name, bit in SURFACE_FLAGS.items() if value.__flags__ & bit),
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in value.__mro__],
        # A heap type always has __module__ in its own dict; its value is compared above.
        "attributes": sorted(set(dir(value)) - {"__module__"}),
        "sizes": [value.__basicsize__, value.__itemsize__, value.__dictoffset__, value.__weakrefoffset__],
        "set-attribute": outcome(set_attribute),
        "call-without-arguments": outcome(value),
        "subclass": outcome(lambda: type("Sub", (value,), {})),
    }


def check_surface(module):
    """What Python code can observe of the module and its types, as JSON: a port keeps it."""
    mod = sys.modules[module]
    names = {name: type(value).__name__ for name, value in vars(mod).items() if not name.startswith("__")}
    surface = {
        "doc": mod.__doc__,
        "names": dict(sorted(names.items())),
        # Every type the module exposes: a type with a __module__ descriptor does not name
        # the module in its dict, so module_types() would miss it before the port.
        "types": {name: type_surface(value) for name, value in sorted(vars(mod).items())
                  if isinstance(value, type) and not name.startswith("__")},
    }
    return json.dumps(surface, sort_keys=True)


CHECKS = {
    "import": check_import,
    "surface": check_surface,
    "script": check_script,
    "heap-types": check_heap_types,
    "second-load": check_second_load,
    "leak": check_leak,
}


# -- the main interpreter's driver

class Channel:
    """Step records on the process's real stdout; everything else printed goes to stderr."""

    def __init__(self):
        self.fd = os.dup(1)
        # Smoke scripts may print: keep their output out of the JSON stream.
        os.dup2(2, 1)

    def send(self, **record):
        os.write(self.fd, (json.dumps(record) + "\n").encode())

    def begin(self, step, where):
        self.send(begin=step, where=where)

    def step(self, step, ok, detail="", data=""):
        self.send(step=step, ok=ok, detail=detail, data=data)


class Subinterpreters:
    """Isolated subinterpreters (own GIL, multi-phase modules only) on 3.12 and 3.13."""

    def __init__(self, source, filename):
        self.setup = (
            "import types as _porter_types\n"
            "_porter = _porter_types.ModuleType('_porter_verify_child')\n"
            f"exec(compile({source!r}, {filename!r}, 'exec'), _porter.__dict__)\n"
        )
        self.results, self.results_w = os.pipe()
        os.set_blocking(self.results, False)
        try:
            import _interpreters as api  # 3.13
        except ImportError:
            import _xxsubinterpreters as api  # 3.12
        self.api = api
        # 3.13's _interpreters also has a run_string, with 3.13 semantics.
        self.raises = api.__name__ == "_xxsubinterpreters"
        self.ids = []

    def run(self, iid, code):
        """Run code in the subinterpreter; raise RuntimeError if it raised."""
        if self.raises:
            # 3.12: run_string raises RunFailedError("<class 'X'>: msg").
            try:
                self.api.run_string(iid, code)
            except Exception as exc:  # noqa: BLE001
                raise RuntimeError(re.sub(r"<class '([\w.]+)'>", r"\1", str(exc))) from None
        else:
            # 3.13: exec returns an exception snapshot instead of raising.
            failure = self.api.exec(iid, code)
            if failure is not None:
                raise RuntimeError(f"{failure.type.__name__}: {failure.msg}")

    def create(self):
        if self.raises:
            iid = self.api.create(isolated=True)
        else:
            iid = self.api.create("isolated")
        self.ids.append(iid)
        self.run(iid, self.setup)
        return iid

    def run_shared(self, checks):
        """Run `checks` ((name, *args) each) one after the other in a fresh subinterpreter that
        shares the main GIL and still refuses single-phase modules (check_multi_interp_extensions):
        where a module claiming Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED must work. A check runs only
        if the one before it passed. Returns (ok, detail) per check."""
        calls = "".join(f"if _porter_ok:\n    _porter_ok = _porter.report_check({self.results_w}, "
                        f"{', '.join(repr(a) for a in check)})\n" for check in checks)
        code = self.setup + "_porter_ok = True\n" + calls
        try:
            if self.raises:  # 3.12: a one-shot interpreter from _testcapi (gil 1: shared)
                import _testcapi

                _testcapi.run_in_subinterp_with_config(
                    code, use_main_obmalloc=True, allow_fork=True, allow_exec=True, allow_threads=True,
                    allow_daemon_threads=False, check_multi_interp_extensions=True, gil=1)
            else:
                config = self.api.new_config("isolated")
                config.gil, config.use_main_obmalloc = "shared", True
                iid = self.api.create(config)
                try:
                    self.run(iid, code)
                finally:
                    self.api.destroy(iid)
        except Exception as exc:  # noqa: BLE001
            return [(False, one_line(f"cannot run a shared-GIL subinterpreter: {describe(exc)}"))] * len(checks)
        results = self.results_written()
        while len(results) < len(checks):
            results.append((False, SKIPPED_IMPORT if results and not results[0][0] else "no result"))
        return results

    def results_written(self):
        """The (ok, detail) results report_check wrote to the pipe since the last read, in order."""
        pending = b""
        while True:
            try:
                chunk = os.read(self.results, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            pending += chunk
        results = []
        for line in pending.decode("utf-8", "replace").splitlines():
            try:
                ok, detail = json.loads(line)
            except ValueError:
                break
            results.append((ok, detail))
        return results

    def check(self, iid, name, *args):
        args_text = ", ".join(repr(a) for a in args)
        try:
            self.run(iid, f"_porter.report_check({self.results_w}, {name!r}, {args_text})")
        except RuntimeError as exc:
            return False, one_line(f"subinterpreter error: {exc}")
        results = self.results_written()
        return results[0] if results else (False, "subinterpreter returned no result")

    def destroy_all(self):
        for iid in self.ids:
            self.api.destroy(iid)
        self.ids = []


def summarise(parts):
    """One detail for a check run in several interpreters, naming those that failed."""
    failed = [f"{where}: {detail}" for where, ok, detail in parts if not ok]
    if failed:
        return False, "; ".join(failed)
    details = {detail for _, _, detail in parts}
    if len(details) == 1:
        return True, details.pop()
    return True, "; ".join(f"{where}: {detail}" for where, _, detail in parts)


class Driver:
    """Runs the steps of one verification in their order and reports each one."""

    def __init__(self, config, channel):
        self.module, self.builddir = config["module"], config["builddir"]
        self.extension, self.leak_cycles = config["extension"], config["leak_cycles"]
        self.smoke, self.isolation = config["smoke"], config["isolation"]
        self.channel = channel
        self.isolation_parts, self.heap_parts = [], []

    def check(self, step, where, runner, name, *args):
        self.channel.begin(step, where)
        return runner(name, *args)

    def after_import(self, where, runner, imported):
        """Smoke, isolation and heap-type checks, which need the module imported in `where`."""

        def part(step, name, *args):
            return self.check(step, where, runner, name, *args) if imported else (False, SKIPPED_IMPORT)

        self.channel.step(f"{where}-smoke", *part(f"{where}-smoke", "script", self.smoke, "smoke.py"))
        if where == "main":
            ok, detail = part("surface", "surface", self.module)
            summary = f"{len(json.loads(detail)['types'])} types" if ok else detail
            self.channel.step("surface", ok, summary, data=detail if ok else "")
        if self.isolation is not None:
            self.isolation_parts.append((where, *part("isolation", "script", self.isolation, "isolation.py")))
        # One subinterpreter is enough to see a static type; sub2 repeats sub1.
        if where in ("main", "sub1"):
            self.heap_parts.append((where, *part("heap-types", "heap-types", self.module)))

    def run(self):
        imported = self.check("main-import", "main", run_check, "import", self.module, self.builddir)
        self.channel.step("main-import", *imported)
        main_imported = imported[0]
        self.after_import("main", run_check, main_imported)

        with open(__file__, encoding="utf-8") as own_source:
            subs = Subinterpreters(own_source.read(), __file__)
        for where in ("sub1", "sub2"):
            self.channel.begin(f"{where}-import", where)
            try:
                iid = subs.create()
            except Exception as exc:  # noqa: BLE001
                runner = None
                imported = (False, one_line(f"cannot create an isolated subinterpreter: {describe(exc)}"))
            else:
                def runner(name, *args, iid=iid):
                    return subs.check(iid, name, *args)

                imported = runner("import", self.module, self.builddir)
            self.channel.step(f"{where}-import", *imported)
            self.after_import(where, runner, imported[0])

        self.channel.begin("shared-import", "shared")
        (imported, smoked) = subs.run_shared([("import", self.module, self.builddir),
                                              ("script", self.smoke, "smoke.py")])
        self.channel.step("shared-import", *imported)
        self.channel.step("shared-smoke", *smoked)

        if self.isolation is not None:
            self.channel.step("isolation", *summarise(self.isolation_parts))
        self.channel.step("heap-types", *summarise(self.heap_parts))
        if main_imported:
            second = self.check("second-load", "main", run_check, "second-load", self.module, self.extension,
                                self.smoke)
        else:
            second = (False, SKIPPED_IMPORT)
        self.channel.step("second-load", *second)
        if main_imported:
            leak = self.check("leak", "main", run_check, "leak", self.module, self.extension, self.leak_cycles)
        else:
            leak = (False, SKIPPED_IMPORT)
        self.channel.step("leak", *leak)

        self.channel.begin("teardown", "subinterpreters")
        try:
            subs.destroy_all()
        except Exception as exc:  # noqa: BLE001
            self.channel.step("teardown", False, f"destroying a subinterpreter failed: {describe(exc)}")
        self.channel.send(done=True)


def main():
    config = json.load(sys.stdin)
    channel = Channel()
    for name in MAIN_PREIMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    Driver(config, channel).run()
    # stdout now points at stderr; os._exit would drop what the scripts printed.
    sys.stdout.flush()
    sys.stderr.flush()
    # Finalising the main interpreter after a refused import in an isolated
    # subinterpreter can crash 3.12.1/3.13.0; every result is already out.
    os._exit(0)


if __name__ == "__main__":
    main()
