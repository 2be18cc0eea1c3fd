"""Golden files: the rendered text of every diagnostic, one small spec per code.

`tests/golden/NAME.cnn` is checked and its diagnostics rendered (no colour) into
`tests/golden/NAME.txt`. Regenerate with `CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_golden.py`
and read the diff.
"""

import os
from pathlib import Path

import pytest
from conftest import BACKEND_CODES, INPUT_OVERRIDES

from cnnspec.codes import CODES
from cnnspec.diagnostics import SpecError, render_all
from cnnspec.network import check

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.cnn"))


def rendered(name: str, monkeypatch) -> tuple[str, list]:
    monkeypatch.chdir(GOLDEN)
    network, diagnostics, sources = check(f"{name}.cnn", input=INPUT_OVERRIDES.get(name.split("_")[0].upper()))
    backend = BACKEND_CODES.get(name.split("_")[0].upper())
    if network is not None and backend is not None:
        try:
            backend(network)
        except SpecError as error:
            diagnostics, sources = error.diagnostics, error.sources
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
    missing = set(CODES) - covered
    assert not missing, f"codes without a golden spec: {sorted(missing)}"


def test_goldens_hold_at_least_twenty_distinct_diagnostics(monkeypatch):
    distinct = set()
    for name in CASES:
        _, diagnostics = rendered(name, monkeypatch)
        distinct |= {(d.code, d.message) for d in diagnostics}
    assert len(distinct) >= 20
