"""The scan document's text: what `json.dumps(doc, indent=2)` would write, character for character."""

from __future__ import annotations

import enum
import json

import pytest

from porter.facts_json import dump, dumps


class Kind(enum.Enum):
    A = "a"


class Access(enum.StrEnum):
    READ = "read"


@pytest.mark.parametrize("doc", [
    pytest.param({}, id="an empty object"),
    pytest.param([], id="an empty array"),
    pytest.param("é\u2028\"\\\n\x00", id="a string that needs escapes"),
    pytest.param({"a": [], "b": {}, "c": [[], {}], "d": ({"e": (1, 2)},)}, id="empty and nested containers"),
    pytest.param({"t": True, "f": False, "n": None, "i": -3, "big": 1 << 70, "s": "x"}, id="every scalar as a value"),
    pytest.param([True, False, None, 0, "s", [1]], id="every scalar in an array"),
    pytest.param({"access": Access.READ, "list": [Access.READ]}, id="a str enum is its value"),
    pytest.param({"n": 1.5, "inf": float("inf"), "list": [-0.0, float("nan")]}, id="floats as json writes them"),
    pytest.param({1: "x", None: "y", False: [], 2.5: {}}, id="keys that are not strings as json writes them"),
])
def test_dumps_writes_what_json_writes(doc):
    assert dumps(doc) == json.dumps(doc, indent=2)


def test_dump_writes_the_same_text_in_pieces():
    doc = {"files": [{"path": f"f{i}.c", "lines": [i, {"x": None}]} for i in range(50)]}
    pieces: list[str] = []
    dump(doc, pieces.append, chunk=10)
    assert len(pieces) > 5
    assert "".join(pieces) == json.dumps(doc, indent=2)


def test_what_json_cannot_encode_raises_as_json_does():
    with pytest.raises(TypeError):
        dumps({"kind": Kind.A})
    with pytest.raises(TypeError, match="keys must be str"):
        dumps({(1, 2): "x"})
