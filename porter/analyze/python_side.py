"""What the package's own Python code reads from a type's `__dict__`.

A port can keep `Type.attr` the same and still change `Type.__dict__['attr']` (a heap type
with a `__module__` descriptor must keep the module name in its dict). Whether that matters
is decided by the Python next to the C code: zope.interface reads
`InterfaceBase.__dict__['__module__']` and expects the C descriptor there.
"""

from __future__ import annotations

import re

from porter.model import PythonDictRead

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
