"""`cnnspec check --format json|sarif|github` and `--output-file`, read back by independent readers."""

import json
import re

import pytest
from click.testing import CliRunner
from conftest import TESTS

from cnnspec.cli import main
from cnnspec.network import check

GOLDEN = TESTS / "golden"
#: one spec with errors (one carrying a secondary label), one with warnings only
FILES = ["e201_shortcut_mismatch.cnn", "w104_bias_before_bn.cnn", "w113_unused_block.cnn"]


def expected(monkeypatch):
    monkeypatch.chdir(GOLDEN)
    return {name: check(name).diagnostics for name in FILES}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_sarif_is_read_by_sarif_tools_with_file_line_column_rule_and_message(monkeypatch, tmp_path):
    loader = pytest.importorskip("sarif.loader", reason="sarif-tools (dev extra) reads the SARIF back")
    diagnostics = expected(monkeypatch)
    out = tmp_path / "report.sarif"
    result = invoke("check", "--format", "sarif", "--output-file", out, *FILES)
    assert result.exit_code == 1 and result.output == ""

    sarif = loader.load_sarif_file(str(out))
    records = sarif.get_records()
    wanted = [d for name in FILES for d in diagnostics[name]]
    assert {d.severity for d in wanted} == {"error", "warning"}
    assert len(records) == len(wanted)
    for record, d in zip(records, wanted):
        assert record["Code"] == d.code
        assert record["Location"] == d.span.file
        assert int(record["Line"]) == d.span.line
        assert record["Severity"] == d.severity
        assert record["Description"].startswith(d.message)

    # what sarif-tools does not read back: columns, rules, related locations
    run = json.loads(out.read_text())["runs"][0]
    assert json.loads(out.read_text())["version"] == "2.1.0"
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    for result_, d in zip(run["results"], wanted):
        region = result_["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"], region["endColumn"]) == \
            (d.span.line, d.span.column, d.span.end_column)
        assert rules[result_["ruleIndex"]] == d.code
        assert len(result_.get("relatedLocations", [])) == len(d.labels)
    assert [rule["name"] for rule in sarif.get_rules_by_id("W104")] == ["bias-before-batch-norm"]


def test_github_annotations_carry_position_and_message_escaped(monkeypatch):
    diagnostics = expected(monkeypatch)
    result = invoke("check", "--format", "github", *FILES)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    wanted = [d for name in FILES for d in diagnostics[name]]
    assert len(lines) == len(wanted)
    pattern = re.compile(r"^::(error|warning) file=([^,]+),line=(\d+),col=(\d+),endLine=(\d+)"
                         r"(?:,endColumn=\d+)?,title=cnnspec (\w+)::(.*)$")
    for line, d in zip(lines, wanted):
        match = pattern.match(line)
        assert match, line
        severity, file, row, col, _, code, message = match.groups()
        assert (severity, file, int(row), int(col), code) == (d.severity, d.span.file, d.span.line, d.span.column,
                                                              d.code)
        # GitHub's escaping: % first, then line breaks
        unescaped = message.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")
        assert unescaped == d.message + (f"\nhelp: {d.help}" if d.help else "")


def test_json_report_has_every_field_and_ok(monkeypatch, tmp_path):
    diagnostics = expected(monkeypatch)
    out = tmp_path / "report.json"
    result = invoke("check", "--format", "json", "-o", out, *FILES, "ok_import.cnn")
    assert result.exit_code == 1
    report = json.loads(out.read_text())
    assert [r["file"] for r in report] == FILES + ["ok_import.cnn"]
    assert [r["ok"] for r in report] == [False, True, True, True]
    first = report[0]["diagnostics"][0]
    d = diagnostics[FILES[0]][0]
    assert first["code"] == d.code and first["span"]["line"] == d.span.line and first["help"] == d.help
    assert first["labels"][0]["message"] == d.labels[0].message


def test_text_report_to_a_file_has_no_colour_and_strict_fails_on_warnings(monkeypatch, tmp_path):
    monkeypatch.chdir(GOLDEN)
    out = tmp_path / "report.txt"
    assert invoke("check", "-o", out, "w104_bias_before_bn.cnn").exit_code == 0
    text = out.read_text()
    assert "warning[W104]" in text and "\x1b[" not in text
    assert invoke("check", "--strict", "--format", "sarif", "-o", out, "w104_bias_before_bn.cnn").exit_code == 1


def test_a_file_that_cannot_be_read_still_gets_a_located_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("check", "--format", "sarif", "missing.cnn")
    assert result.exit_code == 1
    location = json.loads(result.output)["runs"][0]["results"][0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "missing.cnn"
