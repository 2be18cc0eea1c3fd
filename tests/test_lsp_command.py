"""`cnnspec lsp` as a command: without pygls it names the extra; `import cnnspec` and `cnnspec
check` never load the server's dependencies; positions convert to LSP's code units. These run
whether or not the `lsp` extra is installed (tests/test_lsp.py needs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_without_pygls_the_command_names_the_extra():
    code = ("import sys; sys.modules['pygls'] = None; sys.argv = ['cnnspec', 'lsp']\n"
            "from cnnspec.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ['error: the language server needs pygls: pip install "cnnspec[lsp]"']


def test_import_cnnspec_and_check_do_not_load_pygls():
    code = ("import sys, cnnspec; from cnnspec.network import check; check('specs/lenet5.cnn')\n"
            "import cnnspec.cli\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pygls', 'lsprotocol', 'cattrs')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_positions_count_utf16_units_as_lsp_does():
    types = pytest.importorskip("lsprotocol.types", reason="the conversion builds lsprotocol positions")
    from cnnspec.lsp.convert import Positions

    utf16 = Positions(["a\U0001F600b = 1"], lambda s: len(s.encode("utf-16-le")) // 2)
    # `b` is the third code point (column 3) and starts at UTF-16 unit 3 (the emoji takes two)
    assert utf16.position(1, 3) == types.Position(line=0, character=3)
    assert utf16.place(types.Position(line=0, character=3)) == (1, 3)
    assert utf16.position(1, 4).character == 4


@pytest.mark.slow
def test_a_check_the_server_keeps_makes_no_reference_cycles():
    """The server freezes what it keeps out of the collector's reach (`checking.kept`), which frees
    it by reference counting alone: a check, clean or failing, must leave no cyclic garbage."""
    import gc

    from cnnspec.lsp.checking import check_document

    def spec(name: str) -> tuple[str, str]:
        path = ROOT / "specs" / f"{name}.cnn"
        return str(path.resolve()), path.read_text()

    path, text = spec("resnet18")
    cases = [("resnet18", path, text, []), ("E104", path, text + "conv 3 3*3\n", ["E104"]),
             ("E001", path, text + "conv ( {\n", ["E001"]), ("E102", path, text + "relu strde=1\n", ["E102"])]
    cases += [(name, *spec(name), []) for name in ("inception_v3", "unet", "mobilenet_v2")]
    for _, path, text, _ in cases:  # a first check builds the parser and validators, imports the lints
        check_document(path, {path: text}).index  # noqa: B018
    enabled = gc.isenabled()
    gc.disable()
    try:
        for case, path, text, codes in cases:
            gc.collect()
            result = check_document(path, {path: text})
            assert [d.code for d in result.diagnostics] == codes
            result.index  # noqa: B018  the site index is kept too
            del result
            assert gc.collect() == 0, case
    finally:
        if enabled:
            gc.enable()
