"""The zoo as a whole: every spec checks clean under --strict, the CLI lists and shows it,
`zoo:NAME` loads from the package, and docs/zoo.md is the table the specs generate."""

import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

import cnnspec
from cnnspec.cli import main
from cnnspec.zoo import zoo_names, zoo_table

ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))


def test_the_zoo_is_the_specs_folder():
    assert zoo_names() == ZOO
    assert len(ZOO) >= 30


@pytest.mark.parametrize("name", ZOO)
def test_zoo_spec_is_strictly_clean_and_opens_with_its_reference(name):
    result = CliRunner().invoke(main, ["check", "--strict", f"zoo:{name}"])
    assert result.exit_code == 0, result.output
    text = (SPECS / f"{name}.cnn").read_text()
    assert text.startswith("# ")
    assert "expect params" in text and "expect macs" in text


def test_docs_zoo_md_is_current():
    assert (ROOT / "docs" / "zoo.md").read_text() == zoo_table(), "run `cnnspec zoo table > docs/zoo.md`"


@pytest.mark.slow
def test_zoo_list_and_show():
    listed = CliRunner().invoke(main, ["zoo", "list"])
    assert listed.exit_code == 0
    assert "resnet50" in listed.output and "25,557,032 params" in listed.output
    shown = CliRunner().invoke(main, ["zoo", "show", "resnet18"])
    assert shown.output == (SPECS / "resnet18.cnn").read_text()
    missing = CliRunner().invoke(main, ["zoo", "show", "resnt18"])
    assert missing.exit_code == 1 and "did you mean `resnet18`" in missing.output


def test_zoo_names_load_through_the_api():
    assert cnnspec.load("zoo:densenet121").params == 7_978_856
