"""The patch format: patience diff, a/ b/ paths, files without a final newline."""

from __future__ import annotations

import subprocess

from porter.diff import unified_diff


def test_no_change_gives_no_hunk():
    assert unified_diff("x.c", b"a\n", b"a\n") == b""


def test_a_last_line_without_newline_gets_the_marker_and_applies(tmp_path):
    old, new = b"int a;\nint b;", b"int a;\nint c;"
    patch = unified_diff("x.c", old, new)
    assert b"\\ No newline at end of file\n" in patch
    (tmp_path / "x.c").write_bytes(old)
    done = subprocess.run(["patch", "-p1", "--quiet"], input=patch, cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "x.c").read_bytes() == new


def test_form_feeds_and_crlf_lines_are_kept_byte_for_byte(tmp_path):
    old = b"/* a */\r\n\x0c\r\nint a;\r\n"
    new = b"/* a */\r\n\x0c\r\nint b;\r\n"
    patch = unified_diff("x.c", old, new)
    (tmp_path / "x.c").write_bytes(old)
    done = subprocess.run(["git", "apply", "-"], input=patch, cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "x.c").read_bytes() == new
