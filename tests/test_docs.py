"""Every diagnostic code has a page, and every page's examples do what the page says.

`docs/lints/CODE.md` (warnings) and `docs/errors/CODE.md` (errors) each show an example that
raises the code and a version that does not. The ```cnn blocks are checked here, so a page
cannot drift from the checker.
"""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import BACKEND_CODES, INPUT_OVERRIDES

import cnnspec
from cnnspec.cli import main
from cnnspec.codes import CODES

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADINGS = {"warning": ("## What it does", "## Why is this bad?", "## Example", "## Use instead"),
            "error": ("## What it means", "## Example", "## Use instead")}
#: codes whose example needs more than one file; their goldens (tests/golden) raise them
MULTI_FILE = {"E131"}
FENCE = re.compile(r"```cnn\n(.*?)```", re.S)


def page(code: str) -> Path:
    return DOCS / ("lints" if CODES[code][0] == "warning" else "errors") / f"{code}.md"


def section(text: str, heading: str) -> str:
    start = text.index(heading) + len(heading)
    following = text.find("\n## ", start)
    return text[start:following if following >= 0 else len(text)]


def raised(code: str, spec: str, folder: Path) -> set[str]:
    """The codes a spec raises, through the path a user would take to meet `code`."""
    try:
        network = cnnspec.loads(spec, path="example.cnn", root=folder, input=INPUT_OVERRIDES.get(code))
        codes = {d.code for d in network.diagnostics}
        if code in BACKEND_CODES:
            BACKEND_CODES[code](network)
    except cnnspec.SpecError as error:
        return {d.code for d in error.diagnostics}
    return codes


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_has_a_page_in_the_ruff_form(code):
    path = page(code)
    assert path.exists(), f"{code} has no page: {path}"
    text = path.read_text()
    severity, title = CODES[code]
    assert text.startswith(f"# {code}: {title}"), "the page opens with the code and its title"
    for heading in HEADINGS[severity]:
        assert heading in text, heading


@pytest.mark.parametrize("code", sorted(CODES))
def test_page_examples_raise_the_code_and_the_fix_does_not(code, tmp_path):
    text = page(code).read_text()
    examples = FENCE.findall(section(text, "## Example"))
    fixes = FENCE.findall(section(text, "## Use instead"))
    if code in MULTI_FILE:
        assert not examples
        return
    assert examples and fixes, "a ```cnn example and a ```cnn fix"
    for spec in examples:
        assert code in raised(code, spec, tmp_path), spec
    for spec in fixes:
        codes = raised(code, spec, tmp_path)
        assert code not in codes and not {c for c in codes if CODES[c][0] == "error"}, (spec, codes)


@pytest.mark.parametrize("code", ["W104", "E201", "e401"])
def test_explain_prints_the_page(code):
    result = CliRunner().invoke(main, ["explain", code])
    assert result.exit_code == 0
    assert result.output == page(code.upper()).read_text()


def test_explain_suggests_a_close_code():
    result = CliRunner().invoke(main, ["explain", "W1044"])
    assert result.exit_code == 1 and "W104" in result.output


def test_pages_for_no_code_do_not_linger():
    codes = {p.stem for folder in ("lints", "errors") for p in (DOCS / folder).glob("*.md")}
    assert codes <= set(CODES), sorted(codes - set(CODES))
