"""How the checklist report sets names and paths: in code spans, whole."""

from __future__ import annotations

import pytest

from porter.report import backticks


@pytest.mark.parametrize(("text", "marked"), [
    ("/work/pkg/src/psycopg.h:30: error", "`/work/pkg/src/psycopg.h:30`: error"),
    ("see src/mod.c:12 and setup.py", "see `src/mod.c:12` and `setup.py`"),
    ("counter stays global in counter_add()", "`counter` stays global in `counter_add()`"),
    ("Py_DECREF(self->value) and a->b", "`Py_DECREF(self->value)` and `a->b`"),
    ("already `in_code` here", "already `in_code` here"),
])
def test_paths_and_identifiers_are_set_in_code_spans(text, marked):
    assert backticks(text, {"counter"}) == marked
