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
    file: str
    line: int


@dataclass(frozen=True)
class BuildConfig:
    defines: tuple[tuple[str, str], ...] = ()  # -D name=value for every extension of the package
    include_dirs: tuple[str, ...] = ()  # relative to the project root
    limited_api: Setting | None = None  # Py_LIMITED_API the build defines (its value: hex text)
    installed_headers: tuple[str, ...] = ()  # headers the package installs for other code
    files: tuple[str, ...] = ()  # the build files read

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
        if found.get("py_limited_api") and limited is None:
            # py_limited_api=True alone builds an abi3 wheel without choosing a version: the
            # interpreter's own API applies.
            pass
    return BuildConfig(tuple(sorted(defines.items())), tuple(dict.fromkeys(includes)), limited,
                       tuple(dict.fromkeys(headers)), tuple(read))


# --------------------------------------------------------------------------- setup.py


def _from_setup_py(path: str, data: bytes) -> dict:
    tree = ast.parse(data, filename=path)
    names = _literal_names(tree)
    out: dict = {"defines": [], "include_dirs": [], "headers": []}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            value = _literal(kw.value, names)
            if kw.arg == "define_macros" and isinstance(value, list):
                for item in value:
                    if isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
                        macro = item[1] if len(item) > 1 else None
                        out["defines"].append((item[0], "" if macro is None else str(macro), kw.value.lineno))
            elif kw.arg == "include_dirs" and isinstance(value, list):
                out["include_dirs"] += [d for d in value if isinstance(d, str)]
            elif kw.arg == "extra_compile_args" and isinstance(value, list):
                for flag in value:
                    if isinstance(flag, str):
                        _flag(flag, out, kw.value.lineno)
            elif kw.arg == "headers" and isinstance(value, list):
                out["headers"] += [h for h in value if isinstance(h, str)]
            elif kw.arg == "py_limited_api" and value is True:
                out["py_limited_api"] = True
    return out


def _literal_names(tree: ast.Module) -> dict[str, object]:
    """`NAME = <literal>` bindings anywhere in the script, for keyword arguments that name them.

    A name bound to lists in several branches (`include_dirs = []` / `= ['deps/x']`) stands
    for all of them together: for include folders a superset is harmless.
    """
    names: dict[str, object] = {}
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _literal(stmt.value, names)
            if value is _UNKNOWN:
                continue
            name = stmt.targets[0].id
            before = names.get(name)
            if isinstance(before, list) and isinstance(value, list):
                value = before + [v for v in value if v not in before]
            names[name] = value
    return names


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
