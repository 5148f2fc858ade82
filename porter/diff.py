"""Patience unified diffs on bytes, in the shape `git apply` and `patch -p1` accept."""

from __future__ import annotations

import patiencediff

NO_NEWLINE = b"\\ No newline at end of file\n"


def unified_diff(path: str, old: bytes, new: bytes, context: int = 3, created: bool = False) -> bytes:
    """A diff of one file with a/ and b/ prefixes (from /dev/null for a file the port
    `created`); empty when nothing changed."""
    if old == new:
        return b""
    # Split on "\n" only, as patch and git do (splitlines would also split on a lone "\r" or
    # a form feed); the surrogateescape round trip keeps every byte as it was.
    a = [x.decode("utf-8", "surrogateescape") for x in _lines(old)]
    b = [x.decode("utf-8", "surrogateescape") for x in _lines(new)]
    lines = patiencediff.unified_diff(
        a, b, fromfile="/dev/null" if created else f"a/{path}", tofile=f"b/{path}", n=context,
        sequencematcher=patiencediff.PatienceSequenceMatcher,
    )
    out = []
    for text_line in lines:
        line = text_line.encode("utf-8", "surrogateescape")
        if line.startswith((b"---", b"+++")):
            line = line.rstrip(b"\r\n \t") + b"\n"
        elif created and line.startswith(b"@@ -1,0 "):
            line = b"@@ -0,0 " + line[len(b"@@ -1,0 "):]  # GNU patch creates a file from -0,0
        elif not line.endswith((b"\n", b"\r")):
            # The file's last line has no newline: the marker goes on a line of its own.
            line = line + b"\n" + NO_NEWLINE
        out.append(line)
    return b"".join(out)


def _lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
