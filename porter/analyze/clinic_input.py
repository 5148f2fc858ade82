"""Argument Clinic input blocks that declare a function: its name, its impl, its parameters, and
whether clinic can give it a `defining_class` parameter (and where that line would go)."""

from __future__ import annotations

import re

from porter.model import ClinicFunction

_INPUT = b"/*[clinic input]"
_START = b"[clinic start generated code]*/"
_END = re.compile(rb"/\*\[clinic end generated code[^\]]*\]\*/")
# Lines of a block that are not the function's own: directives and decorators.
_DIRECTIVES = frozenset({"module", "class", "set", "destination", "output", "dump", "printout", "preserve",
                         "version"})
# `mod.Class.meth [as c_name] [-> conv]`, or a clone `mod.Class.other [as c_name] = mod.Class.meth`.
_FUNCTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?:\s+as\s+\w+)?\s*(=)?")
_PARAMETER = re.compile(r"^(\w+)\s*:\s*(\w+)")
# The C function whose header the generated block after the input holds: the last name before `(`.
_IMPL_HEADER = re.compile(rb"(\w+)\s*\(")
_DEFAULT_INDENT = "    "


def clinic_functions(path: str, text: bytes) -> list[ClinicFunction]:
    """Every clinic input block of the file that declares a function."""
    out = []
    at = 0
    while (start := text.find(_INPUT, at)) >= 0:
        end = text.find(_START, start)
        if end < 0:
            break
        body_start = text.find(b"\n", start, end) + 1
        generated_end = _END.search(text, end)
        generated = text[end + len(_START):generated_end.start()] if generated_end else b""
        found = _read_block(path, text, body_start, end, generated)
        if found is not None:
            out.append(found)
        at = end
    return out


def _read_block(path: str, text: bytes, body_start: int, end: int, generated: bytes) -> ClinicFunction | None:
    # (offset, line) for each line of the block, without its line end.
    lines: list[tuple[int, str]] = []
    at = body_start
    while at < end:
        stop = text.find(b"\n", at, end)
        stop = end if stop < 0 else stop
        lines.append((at, text[at:stop].decode("utf-8", "replace").rstrip("\r")))
        at = stop + 1
    decorators = []
    i = 0
    while i < len(lines):
        line = lines[i][1]
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if not line.strip() or line[:1].isspace() or word in _DIRECTIVES:
            i += 1
            continue
        if word.startswith("@"):
            decorators.append(word)
            i += 1
            continue
        break
    if i == len(lines):
        return None  # directives only
    function_line = lines[i][1]
    m = _FUNCTION_LINE.match(function_line)
    if m is None:
        return None
    name = m.group(1)
    impl = next(iter(_IMPL_HEADER.findall(generated)), b"").decode() or None
    # The parameter section: indented lines up to the first unindented one (the docstring).
    section: list[tuple[int, str]] = []
    j = i + 1
    while j < len(lines) and (not lines[j][1].strip() or lines[j][1][:1].isspace()):
        section.append(lines[j])
        j += 1
    docstring_at = lines[j][0] if j < len(lines) else end
    filled = [(off, line) for off, line in section if line.strip()]
    indent = (_indent(filled[0][1]) if filled else "") or _DEFAULT_INDENT
    # Parameter lines sit at the section's indentation; deeper lines are their docstrings.
    params = [(off, line.strip()) for off, line in filled if _indent(line) == indent]
    defining_class = next((p.group(1) for _, line in params if (p := _PARAMETER.match(line))
                           and p.group(2) == "defining_class"), None)
    refusal = _refusal(name, bool(m.group(2)), decorators, [line for _, line in params])
    self_index = next((k for k, (_, line) in enumerate(params) if (p := _PARAMETER.match(line))
                       and p.group(2) == "self"), None)
    if self_index is not None:
        after = params[self_index + 1][0] if self_index + 1 < len(params) else \
            _after_lines(filled, params[self_index][0], docstring_at)
        parameter_at, parameter_line = after, f"{indent}{{name}}: defining_class\n"
    elif params:
        parameter_at, parameter_line = params[0][0], f"{indent}{{name}}: defining_class\n"
    elif j < len(lines):
        # No parameters: a section of its own before the docstring.
        parameter_at, parameter_line = docstring_at, f"{indent}{{name}}: defining_class\n\n"
    else:
        parameter_at, parameter_line = end, f"{indent}{{name}}: defining_class\n"
    return ClinicFunction(path, name, text.count(b"\n", 0, lines[i][0]) + 1, impl, defining_class, refusal,
                          parameter_at, parameter_line, tuple(decorators))


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _after_lines(filled: list[tuple[int, str]], line_at: int, docstring_at: int) -> int:
    """Where the line after `line_at` and its deeper-indented docstring lines starts."""
    later = [off for off, _ in filled if off > line_at]
    return later[0] if later else docstring_at


def _refusal(name: str, clone: bool, decorators: list[str], params: list[str]) -> str:
    """Why clinic cannot give the function a `defining_class` parameter ('' when it can)."""
    last = name.rsplit(".", 1)[-1]
    if clone:
        return "its clinic input clones another function's parameters"
    if last in ("__new__", "__init__"):
        return f"clinic gives slot methods ({last}) no defining class"
    if any(d in ("@getter", "@setter") for d in decorators):
        return "clinic gives getters and setters no defining class"
    if any(d in ("@classmethod", "@staticmethod") for d in decorators):
        return "a class or static method is not called with its defining class"
    if any(line in ("[", "]") for line in params):
        # Clinic 3.12 accepts it but writes a METH_VARARGS wrapper that names an undeclared `cls`.
        return "it has optional groups, which clinic cannot combine with a defining_class parameter"
    if any(re.match(r"\*\s*\w", line) for line in params):
        return "it takes *args, which clinic cannot combine with a defining_class parameter"
    return ""
