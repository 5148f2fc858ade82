"""`lex()` finds the comments, literals and directive lines `tokenize()` would, without tokens."""

import random

import pytest

from porter.lexer import (
    _NAME_CALL,
    lex,
    matching_paren,
    names,
    token_texts,
    tokenize,
    top_level_commas,
    top_level_punct,
)

PIECES = [b"#", b"# define X 1", b"#if A\n", b"#endif", b"\n", b"\r\n", b"\r", b" ", b"\t", b"\\\n", b"\\\r\n",
          b"\\", b"/*", b"*/", b"/* c */", b"//", b"// x\\\n", b'"', b'"str"', b"'", b"'c'", b'L"w"', b"u8'x'",
          b"u", b"L", b"8", b"x", b"foo", b"1.5e+3", b"(", b")", b"{", b"}", b";", b'\\"', b"\\'", b"/", b"*", b"##"]


def _spans(text: bytes) -> tuple[list, list, list]:
    kinds: dict[str, list] = {"directive": [], "comment": [], "literal": []}
    for t in tokenize(text):
        kind = "literal" if t.kind in ("string", "char") else t.kind
        if kind in kinds:
            kinds[kind].append((t.start, t.end))
    return kinds["directive"], kinds["comment"], kinds["literal"]


@pytest.mark.parametrize("text", [
    b'"one\\\r\ntwo" x',
    b'\t1.5e+3}"foo\x0c/* c */\\\r\n\\\r\n}\\',  # runs into a lone backslash at the end of the file
    b"'a\\\r\nb\\\r\n;\\",
    b'x = a + \\\n#b\n#define Y 1 /* two\nlines */ z\n',
    b'u8"x" xu8"y" L\'c\' //c\\\n still comment\n',
])
def test_lex_spans_are_the_tokenizers(text):
    lexed = lex(text)
    assert (list(lexed.directives), list(lexed.comments), list(lexed.literals)) == _spans(text)
    assert len(lexed.code) == len(text)


def test_lex_spans_are_the_tokenizers_on_random_text():
    rng = random.Random(10)
    for _ in range(2000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        lexed = lex(text)
        assert (list(lexed.directives), list(lexed.comments), list(lexed.literals)) == _spans(text), text


def test_matching_paren_hands_back_the_top_level_punctuation_top_level_punct_reads():
    rng = random.Random(11)
    for _ in range(2000):
        text = b"(" + b"".join(rng.choice(PIECES + [b",", b"[", b"]", b"a;b"]) for _ in range(rng.randint(1, 30)))
        inside: list = []
        close = matching_paren(text, 0, top_level=inside)
        if close is not None:
            assert inside == top_level_punct(text, 0, close + 1), text


def test_closing_paren_and_its_commas_on_the_blanked_copy_are_matching_parens():
    rng = random.Random(12)
    for _ in range(3000):
        text = b"x(" + b"".join(rng.choice(PIECES + [b",", b"[", b"]", b"a;b", b"(", b")"]) for _ in range(rng.randint(1, 30)))
        inside: list = []
        close = matching_paren(text, 1, top_level=inside)
        expected = (close, any(t.text == b";" for t in inside)) if close is not None else (None, False)
        lexed = lex(text)
        assert lexed.closing_paren(1) == expected, text
        if close is not None:
            assert lexed.top_level_commas(1, close) == top_level_commas(text, 1, close + 1), text


def test_names_skips_the_lexer_only_where_it_would_blank_nothing():
    rng = random.Random(13)
    for _ in range(2000):
        text = b"".join(rng.choice(PIECES + [b"f(", b"g ()", b","]) for _ in range(rng.randint(1, 12)))
        for directives in (True, False):
            code = lex(text, directives).code
            expected = [(m.start(), m.end("name"), m.group("name").decode()) for m in _NAME_CALL.finditer(code)
                        if m.group("name")]
            assert [(n.start, n.end, n.text) for n in names(text, directives=directives)] == expected, text


def test_names_of_a_branch_read_from_the_files_lexing_are_those_of_the_branch_lexed_alone():
    # A branch body runs from the end of one directive line to the start of the next.
    rng = random.Random(14)
    for _ in range(2000):
        text = b"".join(rng.choice(PIECES + [b"\n#else\n", b"\n#endif\n", b"f(x)"]) for _ in range(rng.randint(1, 30)))
        lexed = lex(text)
        ends = [end for _, end in lexed.directives]
        starts = [start for start, _ in lexed.directives[1:]] + [len(text)]
        for start, end in zip(ends, starts[:len(ends)], strict=True):
            assert names(text, start, end, lexed=lexed) == names(text, start, end), text


def test_lex_without_directives_finds_the_comments_and_literals_tokenize_reads_without_them():
    rng = random.Random(15)
    for _ in range(2000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        tokens = list(tokenize(text, directives=False))
        lexed = lex(text, directives=False)
        assert list(lexed.comments) == [(t.start, t.end) for t in tokens if t.kind == "comment"], text
        assert list(lexed.literals) == [(t.start, t.end) for t in tokens if t.kind in ("string", "char")], text


def test_token_texts_are_the_tokens_tokenize_reads_without_directives():
    rng = random.Random(12)
    kinds = frozenset(("ident", "string", "char", "number", "comment", "punct", "newline", "other"))
    for _ in range(2000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        start = rng.randint(0, len(text))
        end = rng.randint(start, len(text))
        want = [(t.kind, t.text) for t in tokenize(text, start, end, directives=False)]
        assert token_texts(text, start, end, kinds) == want, text
        assert token_texts(text, start, end, frozenset(("ident",))) == [w for w in want if w[0] == "ident"]
