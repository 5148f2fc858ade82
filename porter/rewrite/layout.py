"""How a file is laid out: its newlines, indentation and lines, so that inserted C looks native.

This is formatting over the original bytes at offsets the facts give; it never looks for names
or structure (that is analysis' job).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from porter.model import Span

_INDENT = re.compile(rb"[ \t]*")


@dataclass
class FileLayout:
    text: bytes
    _line_starts: list[int] = field(default_factory=list, repr=False)

    @property
    def newline(self) -> str:
        return "\r\n" if b"\r\n" in self.text[:4096] else "\n"

    def text_of(self, span: Span) -> str:
        return self.text[span.start:span.end].decode("utf-8", "replace")

    def line(self, offset: int) -> int:
        """1-based line number of a byte offset."""
        if not self._line_starts:
            self._line_starts = [0] + [m.end() for m in re.finditer(rb"\r\n|\n|\r", self.text)]
        return bisect_right(self._line_starts, offset)

    def line_start(self, offset: int) -> int:
        return self.text.rfind(b"\n", 0, offset) + 1

    def line_indent(self, offset: int) -> str:
        """The indentation of the line containing `offset`."""
        m = _INDENT.match(self.text, self.line_start(offset))
        return m.group().decode() if m else ""

    def body_indent(self, body: Span) -> str:
        """Indentation of the first statement inside a `{ ... }` body (4 more spaces if empty)."""
        text = self.text
        end = text.find(b"}", body.start) if body.end <= body.start else body.end
        first_newline = text.find(b"\n", body.start, end)
        if first_newline < 0:  # a one-line body: `{ return x; }`
            return self.line_indent(body.start) + "    "
        in_comment = False
        for line in text[first_newline + 1:end].splitlines():
            stripped = line.strip()
            if in_comment or stripped.startswith(b"/*"):
                # A comment's own lines (`   psycopg2 module and not...`) are not code's indent.
                in_comment = b"*/" not in stripped
                continue
            if not stripped or stripped.startswith((b"#", b"*", b"//")):
                continue
            return line[:len(line) - len(line.lstrip())].decode()
        return self.line_indent(body.start) + "    "

    def whole_lines(self, span: Span) -> Span:
        """A statement's span grown to its whole lines when nothing else is on them.

        When the lines around it are both blank, one of them goes too, so that deleting a
        statement does not leave a double blank line.
        """
        text = self.text
        start = text.rfind(b"\n", 0, span.start) + 1
        end = text.find(b"\n", span.end)
        end = len(text) if end < 0 else end + 1
        before = text[start:span.start]
        after = text[span.end:end].strip()
        if before.strip() != b"" or not (after == b"" or (after.startswith(b"/*") and after.endswith(b"*/"))
                                        or after.startswith(b"//")):
            return span
        prev_start = text.rfind(b"\n", 0, max(start - 1, 0)) + 1
        prev_blank = start > 0 and text[prev_start:start].strip() == b""
        next_end = text.find(b"\n", end)
        next_end = len(text) if next_end < 0 else next_end + 1
        next_blank = end < len(text) and text[end:next_end].strip() == b""
        if prev_blank and next_blank:
            end = next_end
        return Span(start, end)

    def line_after(self, offset: int) -> int:
        """The start of the line after the one holding `offset` (the end of the file at most)."""
        at = self.text.find(b"\n", offset)
        return len(self.text) if at < 0 else at + 1

    def before_leading_comment(self, offset: int) -> int:
        """Step back from the line of `offset` over a comment block that documents it."""
        text = self.text
        start = text.rfind(b"\n", 0, offset) + 1
        prev_end = start - 1
        while prev_end > 0:
            line_start = text.rfind(b"\n", 0, prev_end) + 1
            line = text[line_start:prev_end].strip()
            if line.endswith(b"*/") or line.startswith(b"//"):
                if line.startswith((b"/*", b"//")):
                    start = line_start
                    prev_end = line_start - 1
                    continue
                open_at = text.rfind(b"/*", 0, prev_end)
                if open_at < 0:
                    break
                start = text.rfind(b"\n", 0, open_at) + 1
                prev_end = start - 1
                continue
            break
        return start

    def off_crlf(self, offset: int) -> int:
        """An offset between the "\\r" and "\\n" of a CRLF moves before the pair, so that no
        edit splits a line ending."""
        text = self.text
        if 0 < offset < len(text) and text[offset - 1:offset + 1] == b"\r\n":
            return offset - 1
        return offset

    def with_newlines(self, text: str) -> str:
        """Generated text with this file's newlines: in a CRLF file every line ends in one CRLF
        (generated text mixes "\\n" with pieces of the file that already end in "\\r\\n")."""
        if "\n" not in text or self.newline != "\r\n":
            return text
        return re.sub(r"\r*\n", "\r\n", text)
