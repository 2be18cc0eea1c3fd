"""Golden files: the rendered text of every diagnostic, one small spec per code.

`tests/golden/NAME.cnn` is checked and its diagnostics rendered (no colour) into
`tests/golden/NAME.txt`. Regenerate with `CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and read the diff.
"""

import os
from pathlib import Path

import pytest

from cnnspec.codes import CODES
from cnnspec.diagnostics import render_all
from cnnspec.network import check

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.cnn"))


def rendered(name: str, monkeypatch) -> tuple[str, list]:
    monkeypatch.chdir(GOLDEN)
    network, diagnostics, sources = check(f"{name}.cnn")
    text = render_all(diagnostics, sources) if diagnostics else f"ok: {network.params:,} params\n"
    return text.rstrip("\n") + "\n", diagnostics


@pytest.mark.parametrize("name", CASES)
def test_golden(name, monkeypatch):
    text, diagnostics = rendered(name, monkeypatch)
    expected_file = GOLDEN / f"{name}.txt"
    if os.environ.get("CNNSPEC_UPDATE_GOLDEN"):
        expected_file.write_text(text)
    assert text == expected_file.read_text()
    code = name.split("_")[0].upper()
    if code in CODES:
        # the file is named for the code it must raise
        assert code in {d.code for d in diagnostics}


def test_every_code_has_a_golden_or_a_test():
    covered = {name.split("_")[0].upper() for name in CASES}
    # E124 needs a lowered layer budget (tests/test_api.py); E303 and E304 are raised when a
    # backend builds the model, not by `cnnspec check` (test_torch_backend.py, test_onnx_backend.py)
    missing = set(CODES) - covered - {"E124", "E303", "E304"}
    assert not missing, f"codes without a golden spec: {sorted(missing)}"


def test_goldens_hold_at_least_twenty_distinct_diagnostics(monkeypatch):
    distinct = set()
    for name in CASES:
        _, diagnostics = rendered(name, monkeypatch)
        distinct |= {(d.code, d.message) for d in diagnostics}
    assert len(distinct) >= 20


def test_every_warning_code_has_a_page_that_cnnspec_explain_prints():
    from click.testing import CliRunner

    from cnnspec.cli import main

    for code, (severity, _) in CODES.items():
        if severity != "warning":
            continue
        page = GOLDEN.parent.parent / "docs" / "lints" / f"{code}.md"
        assert page.exists(), f"{code} has no page in docs/lints"
        text = page.read_text()
        for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
            assert heading in text, (code, heading)
        result = CliRunner().invoke(main, ["explain", code.lower()])
        assert result.exit_code == 0 and result.output == text
