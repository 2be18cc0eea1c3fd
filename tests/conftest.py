import json
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SPECS = ROOT / "specs"


@pytest.fixture(scope="session")
def reference():
    """The reference figures (a copy of the project's models.json, read off torchvision, timm and torch)."""
    return json.loads((TESTS / "data" / "models.json").read_text())
