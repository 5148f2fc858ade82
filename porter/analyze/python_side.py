"""What the package's own Python code reads from a type's `__dict__`.

A port can keep `Type.attr` the same and still change `Type.__dict__['attr']` (a heap type
with a `__module__` descriptor must keep the module name in its dict). Whether that matters
is decided by the Python next to the C code: zope.interface reads
`InterfaceBase.__dict__['__module__']` and expects the C descriptor there.
"""

from __future__ import annotations

import re

from porter.model import PythonAttributeRead, PythonDictRead

# `Owner.__dict__['key']` and `vars(Owner)['key']`, with either quote.
_DICT_READ = re.compile(
    rb"""(?:\b(?P<owner>[A-Za-z_]\w*)\s*\.\s*__dict__|\bvars\(\s*(?P<vowner>[A-Za-z_]\w*)\s*\))"""
    rb"""\s*\[\s*(?P<q>['"])(?P<key>\w+)(?P=q)\s*\]""")


def collect_dict_reads(python_files: list[tuple[str, bytes]]) -> tuple[PythonDictRead, ...]:
    out = []
    for path, data in python_files:
        for m in _DICT_READ.finditer(data):
            owner = (m.group("owner") or m.group("vowner")).decode()
            line = data.count(b"\n", 0, m.start()) + 1
            out.append(PythonDictRead(path, line, owner, m.group("key").decode()))
    return tuple(out)


# `getattr(x, '__module__'...)`: code that asks any object (a class too) for its module.
_GETATTR = re.compile(rb"""\bgetattr\(\s*(?P<target>[^,()]+?)\s*,\s*(?P<q>['"])(?P<attr>\w+)(?P=q)""")


def collect_getattr_reads(python_files: list[tuple[str, bytes]], attribute: str) -> tuple[PythonAttributeRead, ...]:
    out = []
    for path, data in python_files:
        if "/tests/" in f"/{path}" or path.rsplit("/", 1)[-1].startswith("test"):
            continue  # a test reads what it checks; the package's own code is what breaks
        for m in _GETATTR.finditer(data):
            if m.group("attr").decode() == attribute:
                line = data.count(b"\n", 0, m.start()) + 1
                out.append(PythonAttributeRead(path, line, m.group("target").decode().strip(), attribute))
    return tuple(out)
