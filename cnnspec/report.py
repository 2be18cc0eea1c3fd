"""`cnnspec check` results in the formats CI systems read: JSON, SARIF 2.1.0, GitHub annotations.

One `FileReport` per checked file; each format is one function of the list. Positions are
1-based lines and columns counted in characters (SARIF's `unicodeCodePoints`), end columns
exclusive, as in `Span`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, to_json

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


@dataclass(frozen=True)
class FileReport:
    path: str
    ok: bool
    diagnostics: list[Diagnostic]
    #: the checked network, when the file is one (not a library) and checks
    network: object = None


def clean_file(path: str, checked) -> str:
    """What `cnnspec check` says of a file without diagnostics: a network's figures (and the
    `expect` contracts an overridden input left unchecked), or a library's blocks."""
    from cnnspec.network import Library

    if isinstance(checked, Library):
        return f"{path}: ok (blocks only: {', '.join(checked.blocks)})"
    inputs = f"{checked.describe_inputs()}, " if len(checked.input_shapes) > 1 else ""
    text = f"{path}: ok ({checked.params:,} params, {checked.macs:,} MACs, {inputs}{checked.describe_outputs()})"
    if checked.skipped_expects:
        count = len(checked.skipped_expects)
        text += (f"\nnote: {count} `expect` contract{'s' if count > 1 else ''} on the shape, MACs or "
                 f"memory not checked at the overridden {checked.describe_inputs()}")
    return text


def network_totals(network) -> dict:
    """What `summary` ends with, so CI scripts need not run it: the input and output shapes and
    the totals (params, trainable, buffers, MACs, activation bytes, receptive field)."""
    from cnnspec.summary import totals

    record = {"network": network.name, "input": list(network.input_shape), "output": list(network.output_shape)}
    if len(network.input_shapes) > 1:
        record["inputs"] = {name: list(shape) for name, shape in network.input_shapes.items()}
    if network.output_shapes:
        record["outputs"] = {name: list(shape) for name, shape in network.output_shapes.items()}
    return {**record, **totals(network)}


def json_report(reports: list[FileReport]) -> str:
    """One record a file: `file`, `ok`, `diagnostics`, and `totals` (null for a file that does not
    check or holds blocks only)."""
    import json  # here: the text output, the usual one, has no need of it

    return json.dumps([{"file": r.path, "ok": r.ok, "diagnostics": [to_json(d) for d in r.diagnostics],
                        "totals": network_totals(r.network) if r.network is not None else None}
                       for r in reports], indent=2)


# ---------------------------------------------------------------- SARIF

def artifact_location(path: str) -> dict:
    """A relative path stays relative to the checkout (`%SRCROOT%`), as code scanning expects."""
    if Path(path).is_absolute():
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(Path(path).as_posix()), "uriBaseId": "%SRCROOT%"}


def sarif_location(span, fallback_path: str, message: str | None = None) -> dict:
    if span is None:
        physical = {"artifactLocation": artifact_location(fallback_path)}
    else:
        physical = {"artifactLocation": artifact_location(span.file),
                    "region": {"startLine": span.line, "startColumn": span.column,
                               "endLine": span.end_line, "endColumn": span.end_column}}
    location = {"physicalLocation": physical}
    if message:
        location["message"] = {"text": message}
    return location


def sarif_rule(code: Code) -> dict:
    rule = {"id": code, "shortDescription": {"text": code.title}, "defaultConfiguration": {"level": code.severity}}
    page = code.page
    if page.exists():
        text = page.read_text(encoding="utf-8")
        # a lint page's heading ends with the rule's name: `# W104: ... (`bias-before-batch-norm`)`
        name = re.search(r"\(`([a-z0-9-]+)`\)$", text.partition("\n")[0])
        if name:
            rule["name"] = name[1]
        rule["help"] = {"text": text, "markdown": text}
    return rule


def sarif_message(d: Diagnostic) -> str:
    text = d.message
    if d.label:
        text += f" ({d.label})"
    return text + (f"\nhelp: {d.help}" if d.help else "")


def sarif_report(reports: list[FileReport], version: str) -> str:
    used = sorted({d.code for r in reports for d in r.diagnostics if d.code.numbered})
    index = {code: i for i, code in enumerate(used)}
    results = []
    for report in reports:
        for d in report.diagnostics:
            result = {"ruleId": d.code, "level": d.severity, "message": {"text": sarif_message(d)},
                      "locations": [sarif_location(d.span, report.path)]}
            if d.code in index:
                result["ruleIndex"] = index[d.code]
            if d.labels:
                result["relatedLocations"] = [dict(sarif_location(label.span, report.path, label.message), id=i)
                                              for i, label in enumerate(d.labels)]
            results.append(result)
    run = {
        "tool": {"driver": {"name": "cnnspec", "version": version, "semanticVersion": version,
                            "informationUri": "https://pypi.org/project/cnnspec/",
                            "rules": [sarif_rule(code) for code in used]}},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    import json

    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


# ---------------------------------------------------------------- GitHub Actions

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(reports: list[FileReport]) -> str:
    """Workflow commands (`::error file=...,line=...::message`) that annotate the pull request."""
    lines = []
    for report in reports:
        for d in report.diagnostics:
            span = d.span
            fields = {"file": span.file if span else report.path}
            if span is not None:
                fields.update(line=span.line, col=span.column, endLine=span.end_line)
                if span.end_line == span.line:
                    fields["endColumn"] = span.end_column
            fields["title"] = f"cnnspec {d.code}"
            props = ",".join(f"{key}={_escape_property(str(value))}" for key, value in fields.items())
            message = d.message + (f"\nhelp: {d.help}" if d.help else "")
            lines.append(f"::{d.severity} {props}::{_escape_data(message)}")
    return "\n".join(lines)
