"""Diagnostic codes are declared once, in `cnnspec.codes.Code`, and only declared codes are raised.

`Diagnostic` accepts members of `Code` only, so a code the table lacks cannot be raised at run
time; the sources are scanned so that no code is written as a string either (a string compared
with a diagnostic's code, or passed where a member belongs, would slip past the constructor).
"""

import ast
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cnnspec.analysis.lints import RULES
from cnnspec.codes import CODES, Code
from cnnspec.diagnostics import Diagnostic

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnspec"
GOLDEN = ROOT / "tests" / "golden"
LOOKS_LIKE_A_CODE = re.compile(r"[EW]\d{3}")
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "codes.py")


def test_a_diagnostic_refuses_a_code_written_as_a_string():
    for code in ("E101", "E999", "config"):
        with pytest.raises(ValidationError):
            Diagnostic(code=code, message="made up")


def test_a_diagnostic_takes_its_severity_from_its_code():
    assert Diagnostic(code=Code.UNKNOWN_LAYER, message="m").severity == "error"
    assert Diagnostic(code=Code.BIAS_BEFORE_BATCH_NORM, message="m").severity == "warning"
    assert Diagnostic(code=Code.BIAS_BEFORE_BATCH_NORM, severity="error", message="m").severity == "error"


def string_constants(tree: ast.AST):
    """Every string constant that is not a docstring."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_code_is_written_as_a_string(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [f"line {node.lineno}: {node.value!r}" for node in string_constants(tree)
             if LOOKS_LIKE_A_CODE.fullmatch(node.value)]
    assert not found, f"name the member of cnnspec.codes.Code instead: {found}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_diagnostic_is_built_with_a_written_code_or_severity(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        # `cnnspec.diagnostics.Diagnostic`, not the language server protocol's `types.Diagnostic`
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Diagnostic":
            for keyword in node.keywords:
                if keyword.arg == "severity" or (keyword.arg == "code" and isinstance(keyword.value, ast.Constant)):
                    found.append(f"line {node.lineno}: {keyword.arg}=")
    assert not found, f"a diagnostic's severity is its code's: {found}"


def test_every_numbered_code_has_a_page_and_a_golden():
    goldens = {p.stem.split("_")[0].upper() for p in GOLDEN.glob("*.cnn")}
    for code in Code:
        if code.numbered:
            assert code.page.exists(), f"{code} has no page: {code.page}"
            assert code in goldens, f"{code} has no golden in tests/golden"


def test_the_codes_without_a_number_are_the_language_servers_own():
    """They report that the checker could not run (an unusable configuration, a failure of the
    checker), not a problem of the spec: no page, raised by the language server only."""
    assert {code for code in Code if not code.numbered} == {Code.UNUSABLE_CONFIG, Code.INTERNAL}
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        if "Code.UNUSABLE_CONFIG" in text or "Code.INTERNAL" in text:
            assert path.parent.name == "lsp", path


def test_code_texts_are_unique_and_well_formed():
    assert len({code.value for code in Code}) == len(Code)
    for code in Code:
        assert code.title and not code.title[0].isupper() and not code.title.endswith(".")
        if code.numbered:
            assert re.fullmatch(r"[EW]\d{3}", code.value)
    assert set(CODES) == {code.value for code in Code if code.numbered}


def test_lint_rules_are_warnings_and_their_pages_carry_the_title_and_rule_name():
    assert all(code.severity == "warning" for code in RULES)
    # every W1xx code but the suppression check (raised by cnnspec/analysis/suppress.py) is a rule
    lints = {code for code in Code if code.value.startswith("W1") and code != Code.SUPPRESSION_WITHOUT_REASON}
    assert set(RULES) == lints
    for code in Code:
        if code.severity == "warning":
            heading = code.page.read_text(encoding="utf-8").partition("\n")[0]
            assert heading == f"# {code}: {code.title} (`{code.rule_name}`)"


def test_lookup_takes_a_code_in_any_case():
    assert Code.lookup("w104") is Code.BIAS_BEFORE_BATCH_NORM
    assert Code.lookup("E101") is Code.UNKNOWN_LAYER
    assert Code.lookup("E999") is None and Code.lookup("config") is None
