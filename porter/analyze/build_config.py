"""What a package's build scripts say about its extensions: macros, include folders, the
limited API it declares, and the headers it installs. Read, never run.

`setup.py` is read with `ast`: `Extension(...)`/`setup(...)` keyword arguments that are
literals (or names bound to literals at module level) count; comments and anything computed
at run time do not. `setup.cfg` and `pyproject.toml` are read for the same settings.
"""

from __future__ import annotations

import ast
import configparser
import posixpath
import re
import tomllib
from dataclasses import dataclass

_DEFINE_FLAG = re.compile(r"^-D([A-Za-z_]\w*)(?:=(.*))?$")
_INCLUDE_FLAG = re.compile(r"^-I(.+)$")


@dataclass(frozen=True)
class Setting:
    """A build setting and where it is stated."""

    value: str
    file: str  # "" with line 0: given on porter's command line
    line: int


@dataclass(frozen=True)
class ExtensionBuild:
    """`Extension("pkg._mod", ["src/mod.c"])`: a module the build compiles, and from what."""

    name: str  # the dotted import name
    sources: tuple[str, ...]  # as the build file's folder joins them
    file: str
    line: int


@dataclass(frozen=True)
class BuildConfig:
    defines: tuple[tuple[str, str], ...] = ()  # -D name=value for every extension of the package
    include_dirs: tuple[str, ...] = ()  # relative to the project root
    limited_api: Setting | None = None  # Py_LIMITED_API the build defines (its value: hex text)
    installed_headers: tuple[str, ...] = ()  # headers the package installs for other code
    files: tuple[str, ...] = ()  # the build files read
    extensions: tuple[ExtensionBuild, ...] = ()  # setup.py's literal Extension(...) calls

    def extension_of(self, source: str) -> ExtensionBuild | None:
        """The one extension that compiles `source` (a path as shown), if exactly one does."""
        wanted = posixpath.normpath(source)
        found = [e for e in self.extensions if wanted in e.sources]
        return found[0] if len(found) == 1 else None

    def with_given(self, defines: tuple[tuple[str, str], ...], include_dirs: tuple[str, ...]) -> BuildConfig:
        """With what the user said on the command line (it wins over the build files)."""
        if not defines and not include_dirs:
            return self
        limited = next((Setting(v, "", 0) for k, v in defines if k == "Py_LIMITED_API"), self.limited_api)
        given = dict(defines)
        merged = tuple(sorted({**dict(self.defines), **given}.items()))
        return BuildConfig(tuple((k, v) for k, v in merged if k != "Py_LIMITED_API"),
                           tuple(dict.fromkeys(self.include_dirs + include_dirs)), limited,
                           self.installed_headers, self.files, self.extensions)

    @property
    def compiler_defines(self) -> tuple[tuple[str, str], ...]:
        """Every -D the build gives the compiler, Py_LIMITED_API included."""
        limited = (("Py_LIMITED_API", self.limited_api.value),) if self.limited_api is not None else ()
        return self.defines + limited

    @property
    def limited_api_version(self) -> int | None:
        if self.limited_api is None:
            return None
        try:
            return int(self.limited_api.value, 0)
        except ValueError:
            return None


def read_build_config(files: list[tuple[str, bytes]], root: str = "") -> BuildConfig:
    """The settings of every build file given (paths as shown; `root` is their project root)."""
    defines: dict[str, str] = {}
    includes: list[str] = []
    headers: list[str] = []
    limited: Setting | None = None
    extensions: list[ExtensionBuild] = []
    read = []
    for path, data in sorted(files):
        name = posixpath.basename(path)
        try:
            if name == "setup.py":
                found = _from_setup_py(path, data)
            elif name == "setup.cfg":
                found = _from_setup_cfg(path, data)
            elif name == "pyproject.toml":
                found = _from_pyproject(path, data)
            else:
                continue
        except (SyntaxError, ValueError, UnicodeDecodeError, configparser.Error, tomllib.TOMLDecodeError):
            continue  # a build file porter cannot read says nothing
        read.append(path)
        base = posixpath.dirname(path)
        for key, value, line in found["defines"]:
            if key == "Py_LIMITED_API":
                limited = limited or Setting(value or "", path, line)
            else:
                defines.setdefault(key, value)
        includes += [posixpath.normpath(posixpath.join(base, d)) for d in found["include_dirs"]]
        headers += [posixpath.normpath(posixpath.join(base, h)) for h in found["headers"]]
        extensions += [ExtensionBuild(name, tuple(posixpath.normpath(posixpath.join(base, f)) for f in sources),
                                      path, line) for name, sources, line in found.get("extensions", ())]
        if found.get("py_limited_api") and limited is None:
            # py_limited_api=True alone builds an abi3 wheel without choosing a version: the
            # interpreter's own API applies.
            pass
    return BuildConfig(tuple(sorted(defines.items())), tuple(dict.fromkeys(includes)), limited,
                       tuple(dict.fromkeys(headers)), tuple(read), tuple(extensions))


# --------------------------------------------------------------------------- setup.py


def _from_setup_py(path: str, data: bytes) -> dict:
    tree = ast.parse(data, filename=path)
    names, certain = _literal_names(tree)
    out: dict = {"defines": [], "include_dirs": [], "headers": [], "extensions": _extensions(tree, names)}
    for arg, node in _settings(tree):
        value = _literal(node, names)
        if arg == "define_macros":
            # A macro counts if every CPython porter targets defines it; the limited API if
            # any build may declare it (code within it builds without it too).
            sure = _literal(node, certain)
            for item in value if isinstance(value, list) else ():
                if isinstance(item, (tuple, list)) and item and isinstance(item[0], str) \
                        and (item[0] == "Py_LIMITED_API" or (isinstance(sure, list) and item in sure)):
                    macro = item[1] if len(item) > 1 else None
                    out["defines"].append((item[0], "" if macro is None else str(macro), node.lineno))
        elif arg == "include_dirs" and isinstance(value, list):
            out["include_dirs"] += [d for d in value if isinstance(d, str)]
        elif arg == "extra_compile_args" and isinstance(value, list):
            for flag in value:
                if isinstance(flag, str):
                    _flag(flag, out, node.lineno)
        elif arg == "headers" and isinstance(value, list):
            out["headers"] += [h for h in value if isinstance(h, str)]
        elif arg == "py_limited_api" and value is True:
            out["py_limited_api"] = True
    return out


def _extensions(tree: ast.Module, names: dict[str, object]) -> list[tuple[str, list[str], int]]:
    """(name, sources, line) of each `Extension("name", ["a.c", ...])` (a project's own
    subclass of Extension too) whose name and sources are literals."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if not called.endswith("Extension"):
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        name_node = node.args[0] if node.args else keywords.get("name")
        sources_node = node.args[1] if len(node.args) > 1 else keywords.get("sources")
        name = _literal(name_node, names) if name_node is not None else None
        sources = _literal(sources_node, names) if sources_node is not None else None
        if isinstance(name, str) and isinstance(sources, list) and all(isinstance(f, str) for f in sources):
            out.append((name, sources, node.lineno))
    return sorted(out, key=lambda e: e[2])


def _settings(tree: ast.Module):
    """(keyword, value) of every call, and of dicts passed as `**kwargs` (`{"define_macros": ...}`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg is not None:
                    yield kw.arg, kw.value
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield key.value, value


def _literal_names(tree: ast.Module) -> tuple[dict[str, object], dict[str, object]]:
    """`NAME = <literal>` bindings in the script, and list items added by `NAME.append(...)`,
    `.extend(...)` and `+=`, for keyword arguments that name them.

    Two views: every binding (a name bound to lists in several branches stands for all of them
    together: for include folders a superset is harmless), and only what every targeted CPython
    runs (`if sys.version_info.major == 3:` yes, `if __pypy__ is not None:` no): a macro
    defined on some other interpreter must not count.
    """
    every: dict[str, object] = {}
    certain: dict[str, object] = {}
    _bind(tree.body, every, certain, True, {})
    return every, certain


def _bind(body: list[ast.stmt], every: dict, certain: dict, sure: bool, env: dict[str, object]) -> None:
    for stmt in body:
        if isinstance(stmt, ast.If):
            taken = _python_test(stmt.test, env)
            if taken is not False:
                _bind(stmt.body, every, certain, sure and taken is True, env)
            if taken is not True:
                _bind(stmt.orelse, every, certain, sure and taken is False, env)
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and sure:
            _bind_known(stmt.targets[0], stmt.value, env)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            _add(stmt.targets[0].id, stmt.value, every, certain, sure, replace=True)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and isinstance(stmt.op, ast.Add):
            _add(stmt.target.id, stmt.value, every, certain, sure)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            func = call.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and len(call.args) == 1:
                if func.attr == "append":
                    _add(func.value.id, ast.List([call.args[0]]), every, certain, sure)
                elif func.attr == "extend":
                    _add(func.value.id, call.args[0], every, certain, sure)
        # Loops and functions run who knows when: what they bind is possible, not sure.
        definite = sure and isinstance(stmt, (ast.With, ast.Try))
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                _bind(inner, every, certain, definite, env)
        for handler in getattr(stmt, "handlers", ()):
            _bind(handler.body, every, certain, False, env)


def _add(name: str, node: ast.expr, every: dict, certain: dict, sure: bool, replace: bool = False) -> None:
    for names, counts in ((every, True), (certain, sure)):
        if not counts:
            continue
        value = _literal(node, names)
        if value is _UNKNOWN:
            continue
        before = names.get(name)
        if isinstance(before, list) and isinstance(value, list) and (not replace or names is every):
            value = before + [v for v in value if v not in before]
        names[name] = value


# sys.version_info of the Pythons porter targets; a test they disagree on is not known.
_TARGETS = ((3, 11), (3, 12), (3, 13))

# What a setup.py can ask about the interpreter and platform, for porter's target: CPython on
# Linux (the versions come from _TARGETS).
_PLATFORM = {
    "sys.platform": "linux", "os.name": "posix", "platform.system()": "Linux",
    "os.uname()[0]": "Linux", "os.uname().sysname": "Linux", "platform.uname()[0]": "Linux",
    "platform.uname().system": "Linux", "platform.python_implementation()": "CPython",
    "sys.implementation.name": "cpython",
}
_ENVIRONMENT_READS = ("os.environ.get", "os.getenv", "environ.get", "getenv")
_VERSIONS = {"sys.version_info": lambda v: v, "sys.version_info.major": lambda v: v[0],
             "sys.version_info[0]": lambda v: v[0], "sys.version_info.minor": lambda v: v[1],
             "sys.version_info[1]": lambda v: v[1], "sys.version_info[:2]": lambda v: v}
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


def _known(node: ast.expr, env: dict[str, object]) -> list[object] | None:
    """The value of an expression on each target (None: porter cannot know it)."""
    text = ast.unparse(node)
    # The default build: environment variables a build reads are unset (`DEBUG_X=1 pip install`
    # is a developer's choice, not the package's build).
    if isinstance(node, ast.Call) and ast.unparse(node.func) in _ENVIRONMENT_READS:
        if node.args and len(node.args) >= 2:
            return _known(node.args[1], env)
        return [None] * len(_TARGETS)
    if text in ("os.environ", "environ"):
        return [{}] * len(_TARGETS)
    if text in _VERSIONS:
        return [_VERSIONS[text](v) for v in _TARGETS]
    if text in _PLATFORM:
        return [_PLATFORM[text]] * len(_TARGETS)
    if isinstance(node, ast.Name) and node.id in env:
        return [env[node.id]] * len(_TARGETS)
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return [value] * len(_TARGETS)


def _bind_known(target: ast.expr, value: ast.expr, env: dict[str, object]) -> None:
    """`sysname = platform.system()`, `(sysname, node, ...) = os.uname()`: names of known values."""
    if isinstance(target, ast.Name):
        known = _known(value, env)
        if known is not None and len(set(map(repr, known))) == 1 and isinstance(known[0], str):
            env[target.id] = known[0]
    elif isinstance(target, (ast.Tuple, ast.List)) and target.elts and isinstance(target.elts[0], ast.Name) \
            and ast.unparse(value) in ("os.uname()", "platform.uname()"):
        env[target.elts[0].id] = "Linux"


def _python_test(test: ast.expr, env: dict[str, object] | None = None) -> bool | None:
    """Whether a setup.py `if` test holds for every targeted CPython on Linux (None: not known)."""
    env = env or {}
    if isinstance(test, ast.BoolOp):
        values = [_python_test(v, env) for v in test.values]
        if isinstance(test.op, ast.And):
            return False if False in values else (True if all(v is True for v in values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _python_test(test.operand, env)
        return None if inner is None else not inner
    results: set[bool] = set()
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "hasattr" \
            and len(test.args) == 2 and ast.unparse(test.args[0]) == "sys":
        name = test.args[1].value if isinstance(test.args[1], ast.Constant) else None
        return False if name == "pypy_version_info" else None
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) \
            and test.func.attr in ("startswith", "endswith") and len(test.args) == 1:
        subject, arg = _known(test.func.value, env), _known(test.args[0], env)
        if subject is None or arg is None:
            return None
        for a, b in zip(subject, arg, strict=True):
            if not isinstance(a, str) or not isinstance(b, (str, tuple)):
                return None
            results.add(a.startswith(b) if test.func.attr == "startswith" else a.endswith(b))
        return results.pop() if len(results) == 1 else None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if ast.unparse(left) in ("__pypy__", "pypy") and isinstance(op, (ast.Is, ast.IsNot)) \
            and ast.unparse(right) == "None":
        return isinstance(op, ast.Is)  # `try: import __pypy__` / `except ImportError: __pypy__ = None`
    a, b, compare = _known(left, env), _known(right, env), _COMPARE.get(type(op))
    if a is None or b is None or compare is None:
        return None
    implementation = "implementation" in ast.unparse(left)
    for x, y in zip(a, b, strict=True):
        if implementation and isinstance(x, str) and isinstance(y, str):
            x, y = x.lower(), y.lower()  # "CPython" and "cpython" both spell it
        try:
            results.add(bool(compare(x, y)))
        except TypeError:
            return None
    return results.pop() if len(results) == 1 else None


_UNKNOWN = object()


def _literal(node: ast.AST, names: dict[str, object]) -> object:
    if isinstance(node, ast.Name):
        return names.get(node.id, _UNKNOWN)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(e, names) for e in node.elts]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else items
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        # `["./python", "./lib"] + computed`: the parts porter can read still count.
        left, right = _literal(node.left, names), _literal(node.right, names)
        parts = [p for p in (left, right) if isinstance(p, list)]
        if parts:
            return [item for part in parts for item in part]
        return _UNKNOWN
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def _flag(flag: str, out: dict, line: int) -> None:
    m = _DEFINE_FLAG.match(flag.strip())
    if m:
        out["defines"].append((m.group(1), m.group(2) or "", line))
        return
    m = _INCLUDE_FLAG.match(flag.strip())
    if m:
        out["include_dirs"].append(m.group(1))


# --------------------------------------------------------------------------- setup.cfg, pyproject.toml


def _from_setup_cfg(path: str, data: bytes) -> dict:
    parser = configparser.ConfigParser()
    parser.read_string(data.decode("utf-8"))
    out: dict = {"defines": [], "include_dirs": [], "headers": []}
    if parser.has_option("options", "headers"):
        out["headers"] += [h.strip() for h in parser.get("options", "headers").split() if h.strip()]
    if parser.has_option("build_ext", "define"):
        for item in re.split(r"[,\s]+", parser.get("build_ext", "define")):
            if item:
                key, _, value = item.partition("=")
                out["defines"].append((key, value, 1))
    if parser.has_option("build_ext", "include_dirs"):
        out["include_dirs"] += [d for d in re.split(r"[:,\s]+", parser.get("build_ext", "include_dirs")) if d]
    return out


def _from_pyproject(path: str, data: bytes) -> dict:
    doc = tomllib.loads(data.decode("utf-8"))
    out: dict = {"defines": [], "include_dirs": [], "headers": []}
    tool = doc.get("tool", {})
    for ext in tool.get("setuptools", {}).get("ext-modules", []) or []:
        if not isinstance(ext, dict):
            continue
        for item in ext.get("define-macros", []) or []:
            if isinstance(item, list) and item:
                out["defines"].append((str(item[0]), "" if len(item) < 2 or item[1] is None else str(item[1]), 1))
        out["include_dirs"] += [d for d in ext.get("include-dirs", []) or [] if isinstance(d, str)]
        for flag in ext.get("extra-compile-args", []) or []:
            if isinstance(flag, str):
                _flag(flag, out, 1)
    return out
