"""`cnnspec fmt`: one canonical layout, comments kept, idempotent, and never a change of meaning."""

import pytest
from click.testing import CliRunner
from conftest import SPECS, TESTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import specs

import cnnspec
from cnnspec.cli import main
from cnnspec.diagnostics import SpecError
from cnnspec.frontend.formatter import find_comments, format_text
from cnnspec.frontend.parser import parse_text
from cnnspec.frontend.printer import print_spec

GOLDEN = TESTS / "golden"


def without_positions(node):
    """A dumped IR node without its source positions (spans, the file's path)."""
    if isinstance(node, dict):
        return {k: without_positions(v) for k, v in node.items() if not k.endswith("span") and k != "path"}
    if isinstance(node, (list, tuple)):
        return [without_positions(v) for v in node]
    return node


def meaning(text: str) -> dict:
    """The IR of a spec without its source positions."""
    return without_positions(parse_text(text, "spec.cnn").model_dump())


def comments(text: str) -> list[str]:
    return sorted(c.text for c in find_comments(text.splitlines()))


def parses(path) -> bool:
    try:
        parse_text(path.read_text(), path.name)
    except SpecError:
        return False
    return True


CORPUS = sorted(SPECS.rglob("*.cnn")) + sorted(p for p in GOLDEN.rglob("*.cnn") if parses(p))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TESTS.parent)))
def test_corpus_formats_to_a_fixed_point_with_the_same_ir_and_comments(path):
    text = path.read_text()
    formatted = format_text(text, path.name)
    assert format_text(formatted, path.name) == formatted
    assert meaning(formatted) == meaning(text)
    assert comments(formatted) == comments(text)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.cnn")), ids=lambda p: p.stem)
def test_formatting_keeps_what_suppressions_silence(path, monkeypatch):
    monkeypatch.chdir(path.parent)
    text = path.read_text()
    before = cnnspec.loads(text, path=path.name)
    after = cnnspec.loads(format_text(text, path.name), path=path.name)
    assert [(d.code, d.message) for d in after.diagnostics] == [(d.code, d.message) for d in before.diagnostics]
    assert (after.params, after.macs, after.output_shape) == (before.params, before.macs, before.output_shape)


def test_the_zoo_is_formatted():
    result = CliRunner().invoke(main, ["fmt", "--check", str(SPECS)])
    assert result.exit_code == 0, result.output


MESSY = """\
# a header comment

network   tiny
input x :3x32x32
block unit(c,stride=1) {conv c 3x3 stride = stride pad=1;relu}   # one line stays one line
  block  wide(c) {
        conv c*2 1x1


        # before the relu
     relu # after the relu
}
stem: unit(16) ; unit(16,stride=2)
wide(8)
conv 8 3x3 weights=[
  1, 0, -1,  # a row
  2, 0, -2,
  1, 0, -1] frozen pad=1
   # before the closing comment


expect params<1M   # a budget
# the end
"""

EXPECTED = """\
# a header comment

network tiny
input x: 3x32x32
block unit(c, stride=1) { conv c 3x3 stride=stride pad=1; relu }  # one line stays one line
block wide(c) {
  conv c*2 1x1

  # before the relu
  relu  # after the relu
}
stem: unit(16); unit(16, stride=2)
wide(8)
conv 8 3x3 weights=[1, 0, -1, 2, 0, -2, 1, 0, -1] frozen pad=1
# a row
# before the closing comment

expect params < 1M  # a budget
# the end
"""


def test_a_messy_spec_gets_the_canonical_layout():
    assert format_text(MESSY) == EXPECTED
    assert format_text(EXPECTED) == EXPECTED
    assert meaning(MESSY) == meaning(EXPECTED)


def test_trailing_comments_of_consecutive_lines_are_aligned():
    text = "input x: 3x8x8  # the input\nconv 16 3x3 pad=1 # a conv\nrelu\nflatten # flat\n"
    assert format_text(text) == ("input x: 3x8x8     # the input\nconv 16 3x3 pad=1  # a conv\n"
                                 "relu\nflatten  # flat\n")


def test_long_one_line_groups_are_split():
    layers = "; ".join(f"conv {8 * i} 3x3 pad=1" for i in range(1, 8))
    formatted = format_text(f"input x: 3x8x8\nblock b {{ {layers} }}\nb\n")
    assert "block b {\n  conv 8 3x3 pad=1; conv 16" in formatted
    assert all(len(line) <= 100 for line in formatted.splitlines())


# ---------------------------------------------------------------- generated specs, messy layouts

@st.composite
def messy_layouts(draw):
    """A generated spec printed canonically, then indented, joined, spaced and commented at random."""
    spec_ir, _ = draw(specs())
    lines = print_spec(spec_ir).splitlines()
    joined = [lines[0]]
    for line in lines[1:]:
        if draw(st.integers(0, 4)) == 0:
            joined[-1] += "; " + line.strip()
        else:
            joined.append(line)
    words = st.text(alphabet="abc xyz{}();#\"=*", max_size=12)
    out = []
    for number, line in enumerate(joined):
        if draw(st.integers(0, 5)) == 0:
            out.append(" " * draw(st.integers(0, 6)) + "# own " + draw(words) + f" {number}")
        out += [""] * draw(st.integers(0, 2)) if draw(st.integers(0, 3)) == 0 else []
        text = draw(st.sampled_from(["", "  ", "\t", "      "])) + line.strip()
        if draw(st.integers(0, 3)) == 0:
            text += draw(st.sampled_from([" ", "   "])) + "# trailing " + draw(words) + f" {number}"
        out.append(text)
    return "\n".join(out) + "\n"


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=messy_layouts())
def test_generated_specs_in_messy_layouts_format_to_the_same_meaning(text):
    formatted = format_text(text)
    assert meaning(formatted) == meaning(text)
    assert comments(formatted) == comments(text)
    assert format_text(formatted) == formatted


# ---------------------------------------------------------------- the command

def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def test_fmt_rewrites_check_and_diff_report(tmp_path):
    spec = tmp_path / "net.cnn"
    spec.write_text(MESSY)
    clean = tmp_path / "clean.cnn"
    clean.write_text(EXPECTED)

    result = invoke("fmt", "--check", tmp_path)
    assert result.exit_code == 1 and f"would reformat {spec}" in result.output
    assert spec.read_text() == MESSY

    result = invoke("fmt", "--diff", spec)
    assert result.exit_code == 1 and "\n-network   tiny\n" in result.output and "\n+network tiny\n" in result.output
    assert spec.read_text() == MESSY

    result = invoke("fmt", tmp_path)
    assert result.exit_code == 0 and "1 file reformatted, 1 file left unchanged" in result.output
    assert spec.read_text() == EXPECTED
    assert invoke("fmt", "--check", tmp_path).exit_code == 0
    # written through a temporary file that does not linger
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.cnn", "net.cnn"]


def test_fmt_reads_stdin():
    result = invoke("fmt", "-", input="input x: 3x8x8\nrelu;relu # two\n")
    assert result.exit_code == 0 and result.output == "input x: 3x8x8\nrelu; relu  # two\n"


def test_fmt_leaves_a_spec_that_does_not_parse_alone(tmp_path):
    spec = tmp_path / "broken.cnn"
    spec.write_text("input x: 3x8x8\nconv 16 3x3 @2\n")
    result = invoke("fmt", spec)
    assert result.exit_code == 1 and "error[E002]" in result.output and "Traceback" not in result.output
    assert spec.read_text() == "input x: 3x8x8\nconv 16 3x3 @2\n"
    missing = invoke("fmt", tmp_path / "missing.cnn")
    assert missing.exit_code == 1 and "cannot read" in missing.output
