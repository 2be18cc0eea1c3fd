"""Parsing in parts (`ParsedParts`, as the language server re-parses a document on every
keystroke): the statements are those of parsing the whole text, every span where it is in the
file, the parts an edit leaves alone are reused, and a part that does not parse gives the whole
text's diagnostics."""

from __future__ import annotations

import pytest
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnspec.diagnostics import SpecError
from cnnspec.frontend.parser import PART_LINES, ParsedParts, parse_text, top_level_parts

ZOO = sorted(SPECS.rglob("*.cnn"))


def long_spec(blocks: int = 12) -> str:
    """Top-level statements of every shape a part must keep whole: blocks, multi-line groups and
    lists, `when` with `else` on the next line, continued lines, strings with braces."""
    pieces = ["network long", "input x: 8x16x16", 'import "missing{}.cnn"  # a string with braces']
    for i in range(blocks):
        pieces += [
            f"block unit{i}(c=8) {{",
            "  conv c 3x3 pad=1",
            "  relu",
            "}",
            f"stage{i}: {{",
            "  conv 8 1x1",
            "  when (true) { relu }",
            "  # a comment between the arm and its else",
            "",
            "  else { sigmoid }",
            "}",
            "when (false) { relu }",
            "else { identity }",
            f"unit{i}(c=8), \\",
            "  relu",
            f"odd{i} = unit{i}(c=[1,",
            "  2])",
            "conv 8 1x1",
            *(["relu"] * 5),
        ]
    return "\n".join(pieces) + "\n"


def statements_of(text: str, path: str = "long.cnn", reuse=None):
    try:
        return parse_text(text, path, reuse=reuse).statements
    except SpecError as error:
        return [str(d) for d in error.diagnostics]


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_the_zoo_parsed_in_parts_is_the_zoo_parsed_whole(path):
    text = path.read_text()
    reuse = ParsedParts()
    whole = parse_text(text, str(path))
    assert parse_text(text, str(path), reuse=reuse) == whole
    assert parse_text(text, str(path), reuse=reuse) == whole
    assert "".join(part for _, part in top_level_parts(text)) == text


def test_parts_end_where_top_level_statements_end():
    text = long_spec()
    parts = top_level_parts(text)
    assert len(parts) > 3 and "".join(part for _, part in parts) == text
    lines = text.split("\n")
    for first_line, part in parts:
        assert lines[first_line - 1] == part.split("\n")[0]
        # each part ends a statement: nothing open, and no `else` or continued line follows it
        assert part.count("{") - part.count("}") == 0 and part.count("[") == part.count("]")
        assert not part.rstrip("\n").endswith("\\")
        assert part.count("\n") >= PART_LINES or (first_line, part) == parts[-1]
    for next_line, _ in parts[1:]:
        assert not lines[next_line - 1].lstrip().startswith("else")


@pytest.mark.parametrize("between", ["", "\n", "  # the arm's comment\n\n"])
def test_a_part_does_not_end_before_an_else(between):
    """A part of `PART_LINES` lines would end after the `when`'s line; its `else` continues it."""
    text = "input x: 8x8x8\n" + "relu\n" * (PART_LINES - 2) + "when (false) { relu }\n" + between + "else { identity }\nrelu\n"
    reuse = ParsedParts()
    assert statements_of(text, reuse=reuse) == statements_of(text)
    # parsed in parts, not by falling back to the whole text
    assert "".join(part for _, part in reuse.parts) == text
    assert all(not part.lstrip().startswith(("else", "#")) for _, part in reuse.parts)


def test_an_edit_reparses_its_part_and_keeps_the_others():
    text = long_spec()
    reuse = ParsedParts()
    assert statements_of(text, reuse=reuse) == statements_of(text)
    assert "".join(part for _, part in reuse.parts) == text
    before = dict(reuse.parts)
    edited = text.replace("conv c 3x3 pad=1", "conv c 5x5 pad=2", 1)
    assert statements_of(edited, reuse=reuse) == statements_of(edited)
    unchanged = [key for key in reuse.parts if key in before]
    assert len(unchanged) == len(reuse.parts) - 1
    assert all(reuse.parts[key] is before[key] for key in unchanged)


def test_a_part_that_does_not_parse_reports_as_the_whole_text_does():
    text = long_spec()
    reuse = ParsedParts()
    statements_of(text, reuse=reuse)
    for broken in (text.replace("relu\n", "relu )\n", 1), text.replace("conv 8 1x1", "conv 8 1x1 k=99999999999999999999"),
                   text.replace("stage3: {", "stage3: {{")):
        assert statements_of(broken, reuse=reuse) == statements_of(broken)
        assert isinstance(statements_of(broken)[0], str)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_edits_parse_in_parts_as_the_whole_text(data):
    text = long_spec(4)
    reuse = ParsedParts()
    for _ in range(3):
        at = data.draw(st.integers(0, len(text)))
        removed = data.draw(st.integers(0, 3))
        inserted = data.draw(st.text(alphabet="{}[]()#\\\"\n =,:abc01x", max_size=3))
        text = text[:at] + inserted + text[at + removed:]
        assert statements_of(text, reuse=reuse) == statements_of(text)
