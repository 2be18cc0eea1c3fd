"""The language server end to end: `cnnspec lsp` in a subprocess, driven by pytest-lsp's client
over stdio. Every figure the server shows is compared with `cnnspec.load(...).rows`, `cnnspec
fmt` or the spec text itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="the language server needs the `lsp` extra (pygls)")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="the end-to-end tests need pytest-lsp")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.analysis.stats import describe_field  # noqa: E402
from cnnspec.layers import REGISTRY  # noqa: E402
from cnnspec.layers.base import describe_shape  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
#: seconds any single answer may take before the server counts as hung
ANSWER = 60

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "cnnspec", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "cnnspec", "lsp"]))
async def client_without_hints(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), initialization_options={"inlayHints": False}))
    yield
    await lsp_client.shutdown_session()


# ---------------------------------------------------------------- helpers

_versions: dict[str, int] = {}


def ident(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


def expect_diagnostics(client, uri: str):
    """A waiter for the next diagnostics published for `uri` (pytest-lsp's client keeps the last
    ones per document; one waiter per notification method would lose a concurrent one)."""
    client.diagnostics.pop(uri, None)

    async def published() -> list[types.Diagnostic]:
        async def poll():
            while uri not in client.diagnostics:
                await asyncio.sleep(0.01)
            return list(client.diagnostics[uri])
        return await asyncio.wait_for(poll(), ANSWER)
    return published()


async def open_text(client, path: Path, text: str) -> list[types.Diagnostic]:
    uri = path.as_uri()
    _versions[uri] = 1
    waiting = expect_diagnostics(client, uri)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=text)))
    return await waiting


async def change(client, path: Path, text: str, wait: bool = True) -> list[types.Diagnostic] | None:
    uri = path.as_uri()
    _versions[uri] = _versions.get(uri, 0) + 1
    waiting = expect_diagnostics(client, uri) if wait else None
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=_versions[uri]),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
    return await waiting if waiting is not None else None


def close(client, path: Path) -> None:
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=ident(path.as_uri())))


def apply_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Text edits applied as an editor applies them (UTF-16 columns; ASCII text here)."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def offset(p: types.Position) -> int:
        return min(offsets[min(p.line, len(lines))] + p.character, len(text))

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


def position_of(text: str, needle: str, occurrence: int = 0, shift: int = 0) -> types.Position:
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    index += shift
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


# ---------------------------------------------------------------- diagnostics

async def test_zoo_spec_opens_clean(client):
    path = SPECS / "resnet18.cnn"
    assert await open_text(client, path, path.read_text()) == []
    close(client, path)


async def test_a_typed_mistake_is_located_with_its_code_and_page(client):
    path = SPECS / "_lsp_mistake.cnn"
    text = "input x: 3x32x32\nconv 16 3x3 pad=1\n"
    assert await open_text(client, path, text) == []
    typed = text + "conv 16 3x3 strde=2\n"
    (diagnostic,) = await change(client, path, typed)
    assert diagnostic.code == "E102"
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    start = typed.split("\n")[2].index("strde")
    assert (diagnostic.range.start.line, diagnostic.range.start.character) == (2, start)
    assert (diagnostic.range.end.line, diagnostic.range.end.character) == (2, start + len("strde=2"))
    assert diagnostic.code_description.href == (ROOT / "docs" / "errors" / "E102.md").resolve().as_uri()
    assert "help: did you mean `stride`?" in diagnostic.message
    close(client, path)


async def test_after_a_burst_of_changes_the_newest_text_s_diagnostics_stay(client):
    """Changes that come while a check runs wait for it, and a check's result is published only
    while its text is the newest: after a burst the newest text's diagnostics arrive, and no
    older text's replace them."""
    path = SPECS / "_lsp_burst.cnn"
    head = (SPECS / "resnet50.cnn").read_text()
    await open_text(client, path, head)
    for n in range(1, 7):  # a misspelt option on the n-th added line
        await change(client, path, head + "relu\n" * n + "conv 8 3x3 strde=1\n", wait=False)
    newest = head.count("\n") + 6

    def lines_published() -> list[tuple[str, int]]:
        return [(d.code, d.range.start.line) for d in client.diagnostics.get(path.as_uri(), [])]

    async def newest_published():
        while lines_published() != [("E102", newest)]:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(newest_published(), ANSWER)
    # a request answered from the newest check: whatever the server sent before it has arrived
    await client.text_document_hover_async(types.HoverParams(text_document=ident(path.as_uri()),
                                                             position=types.Position(line=newest, character=1)))
    assert lines_published() == [("E102", newest)]
    close(client, path)


async def test_secondary_labels_become_related_information(client):
    path = SPECS / "_lsp_twice.cnn"
    text = "input x: 3x8x8\nblock b { relu }\nblock b { relu }\nb()\n"
    (diagnostic,) = await open_text(client, path, text)
    assert diagnostic.code == "E123"
    (related,) = diagnostic.related_information
    assert related.location.uri == path.as_uri()
    assert related.location.range.start == types.Position(line=1, character=6)
    assert related.message == "first defined here"
    close(client, path)


async def test_suppressions_and_configuration_as_check_applies_them(client, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.cnnspec]\nignore = ["W112"]\n')
    text = "input x: 3x32x32\nconv 20 7x7 pad=3  # cnnspec: ignore[W103] the stem\nconv 20 7x7 pad=3\n"
    path = tmp_path / "spec.cnn"
    path.write_text(text)
    from cnnspec.config import config_for
    from cnnspec.network import check

    _, expected, _ = check(str(path), config=config_for(path))
    got = await open_text(client, path, text)
    assert [(d.code, d.range.start.line + 1) for d in got] == [(e.code, e.span.line) for e in expected]
    assert [d.code for d in got] == ["W103"]  # the suppressed line and the ignored W112 are silent
    close(client, path)


async def test_over_the_limits_refused_as_check_refuses(client, tmp_path):
    text = "input x: 3x8x8\nblock b { relu }\nb() * 100000000\n"
    path = tmp_path / "big.cnn"
    path.write_text(text)
    from cnnspec.network import check

    _, expected, _ = check(str(path))
    got = await open_text(client, path, text)
    assert expected and [d.code for d in got] == [e.code for e in expected]
    close(client, path)


async def test_a_huge_file_is_refused_as_check_refuses_it(client, tmp_path):
    text = "input x: 3x8x8\n" + "relu\n" * 450_000  # 2.25 MB
    path = tmp_path / "huge.cnn"
    path.write_text(text)
    from cnnspec.network import check

    _, expected, _ = check(str(path))
    got = await open_text(client, path, text)
    assert [e.code for e in expected] == ["E012"] and [d.code for d in got] == ["E012"]
    close(client, path)


async def test_an_import_cycle_is_reported_and_the_server_answers(client, tmp_path):
    (tmp_path / "a.cnn").write_text('import "b.cnn"\nblock x { relu }\n')
    (tmp_path / "b.cnn").write_text('import "a.cnn"\nblock y { relu }\n')
    got = await open_text(client, tmp_path / "a.cnn", (tmp_path / "a.cnn").read_text())
    assert [d.code for d in got] == ["E131"]
    assert await asyncio.wait_for(client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=ident((tmp_path / "a.cnn").as_uri()))), ANSWER) is not None
    close(client, tmp_path / "a.cnn")


async def test_imports_read_unsaved_text_and_an_edit_rechecks_importers(client, tmp_path):
    library, main = tmp_path / "lib.cnn", tmp_path / "main.cnn"
    library.write_text("block unit { relu }\n")
    main_text = 'input x: 3x8x8\nimport "lib.cnn"\nunit()\n'
    main.write_text(main_text)
    await open_text(client, library, "block unit { relu }\n")
    assert await open_text(client, main, main_text) == []
    # renamed in the editor, not on disk: the importer is checked again against the unsaved text
    waiting = expect_diagnostics(client, main.as_uri())
    await change(client, library, "block other { relu }\n")
    (diagnostic,) = await waiting
    assert diagnostic.code == "E101" and diagnostic.range.start.line == 2
    close(client, main)
    close(client, library)


# ---------------------------------------------------------------- hover and inlay hints

async def hover_text(client, uri, position) -> str:
    answer = await client.text_document_hover_async(types.HoverParams(text_document=ident(uri), position=position))
    return answer.contents.value


async def test_hover_shows_the_summary_figures_on_resnet50(client):
    path = SPECS / "resnet50.cnn"
    text = path.read_text()
    rows = cnnspec.load(str(path)).rows
    await open_text(client, path, text)
    # a plain layer
    (avgpool,) = [r for r in rows if r.path == "avgpool"]
    shown = await hover_text(client, path.as_uri(), position_of(text, "avgpool global", shift=2))
    assert f"`{describe_shape(avgpool.out_shape)}`" in shown and "`2048x1x1`" in shown
    # a block call: the totals of that call, as the summary's rows add up
    call = [r for r in rows if "layer3.0" in r.scopes]
    shown = await hover_text(client, path.as_uri(), position_of(text, "bottleneck(256", shift=3))
    assert f"`{describe_shape(call[-1].out_shape)}`" in shown
    assert f"{sum(r.params for r in call):,} params" in shown
    assert f"{sum(r.macs for r in call):,} MACs" in shown
    # a label: what it names
    stage = [r for r in rows if r.scopes[:1] == ("layer3",)]
    shown = await hover_text(client, path.as_uri(), position_of(text, "layer3:", shift=1))
    assert describe_shape(stage[-1].out_shape) == "1024x14x14" and "`1024x14x14`" in shown
    assert f"{sum(r.params for r in stage):,} params" in shown
    close(client, path)


async def test_hover_on_a_named_value_shows_its_shape_and_field_where_it_is_bound(client, tmp_path):
    path = tmp_path / "values.cnn"
    await open_text(client, path, VALUES_SPEC)
    network = cnnspec.loads(VALUES_SPEC)
    lines = VALUES_SPEC.split("\n")
    gate = next(r for r in network.rows if r.extra.get("binds") == "gate")
    # read on line 4 (`scale(c1, gate)`): bound on line 3
    shown = await hover_text(client, path.as_uri(), types.Position(line=3, character=lines[3].index("gate") + 1))
    assert "`gate`, bound on line 3" in shown and f"`{describe_shape(gate.out_shape)}` · RF {describe_field(gate.rf)}" in shown
    # the second `c1` (line 11), read by `add` on line 12
    late = next(r for r in network.rows if r.extra.get("binds") == "c1" and r.line == 11)
    shown = await hover_text(client, path.as_uri(), types.Position(line=11, character=lines[11].index("c1") + 1))
    assert "bound on line 11" in shown and f"`{describe_shape(late.out_shape)}`" in shown
    shown = await hover_text(client, path.as_uri(), types.Position(line=11, character=lines[11].index("x)") + 1))
    assert "(an input)" in shown and "`8x16x16`" in shown
    close(client, path)


async def test_hover_on_a_kind_a_block_and_a_code(client):
    path = SPECS / "resnet18.cnn"
    text = path.read_text()
    await open_text(client, path, text)
    shown = await hover_text(client, path.as_uri(), position_of(text, "linear 1000", shift=1))
    assert REGISTRY["linear"].summary in shown
    shown = await hover_text(client, path.as_uri(), position_of(text, "basic(64)", shift=1))
    assert "block basic(c, stride=1)" in shown and "two 3x3 convs" in shown
    close(client, path)
    library = SPECS / "common" / "resnet.cnn"
    text = library.read_text()
    await open_text(client, library, text)
    shown = await hover_text(client, library.as_uri(), position_of(text, "ignore[W103]", shift=8))
    page = (ROOT / "docs" / "lints" / "W103.md").read_text()
    what_it_does = page.split("## What it does\n\n")[1].split("\n\n")[0]
    assert shown.startswith("**W103** (warning)") and " ".join(what_it_does.split()) in shown
    close(client, library)


async def inlay_hints(client, path: Path, lines: int) -> list[types.InlayHint]:
    """The server's inlay hints for the first `lines` lines of an open file."""
    return await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=ident(path.as_uri()),
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=lines, character=0))))


async def test_inlay_hints_give_the_summary_shape_of_every_layer_line(client):
    path = SPECS / "lenet5.cnn"
    text = path.read_text()
    await open_text(client, path, text)
    hints = await inlay_hints(client, path, len(text))
    got = {h.position.line + 1: h.label for h in hints}
    expected = {r.line: f"-> {describe_shape(r.out_shape)}" for r in cnnspec.load(str(path)).rows}
    layer_lines = [n for n, line in enumerate(text.split("\n"), start=1)
                   if line.strip() and not line.startswith(("#", "network", "input", "expect"))]
    assert got == expected and sorted(expected) == layer_lines
    # and as the command prints them: `cnnspec summary`'s layers, one a line here, in order
    printed = subprocess.run([sys.executable, "-m", "cnnspec", "summary", str(path), "--format", "json"],
                             capture_output=True, text=True, check=True).stdout
    assert [got[line] for line in sorted(got)] == [
        "-> " + "x".join(map(str, layer["output"])) for layer in json.loads(printed)["layers"]]
    for hint in hints:  # at the end of the line's code
        assert hint.position.character == len(text.split("\n")[hint.position.line].rstrip())
    close(client, path)


async def test_inlay_hints_inside_a_block_show_each_call_s_shape(client, tmp_path):
    text = "input x: 3x16x16\nblock unit(c) {\n  conv c 3x3 pad=1\n  relu\n}\nunit(8)\nunit(16)\n"
    path = tmp_path / "calls.cnn"
    await open_text(client, path, text)
    hints = await inlay_hints(client, path, 8)
    rows = cnnspec.loads(text).rows
    calls = {r.scopes[0]: r for r in rows}  # the last row of each call
    assert {h.position.line + 1: h.label for h in hints} == {
        3: "-> 8x16x16 | 16x16x16", 4: "-> 8x16x16 | 16x16x16",
        6: f"-> {describe_shape(calls['0'].out_shape)} ({sum(r.params for r in rows if r.scopes[0] == '0'):,} params)",
        7: f"-> {describe_shape(calls['1'].out_shape)} ({sum(r.params for r in rows if r.scopes[0] == '1'):,} params)"}
    close(client, path)


async def test_inlay_hints_can_be_switched_off(client_without_hints):
    path = SPECS / "lenet5.cnn"
    await open_text(client_without_hints, path, path.read_text())
    hints = await inlay_hints(client_without_hints, path, 40)
    assert list(hints) == []
    close(client_without_hints, path)


# ---------------------------------------------------------------- navigation

async def test_definition_jumps_across_an_import(client):
    path = SPECS / "resnet18.cnn"
    text = path.read_text()
    await open_text(client, path, text)
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=ident(path.as_uri()), position=position_of(text, "basic(128", shift=2)))
    library = SPECS / "common" / "resnet.cnn"
    assert found.uri == library.as_uri()
    assert found.range.start == position_of(library.read_text(), "block basic", shift=len("block "))
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=ident(path.as_uri()), position=position_of(text, '"common/resnet.cnn"', shift=3)))
    assert found.uri == library.as_uri()
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=ident(path.as_uri())))
    assert [s.name for s in symbols] == ["common/resnet.cnn", "*stem()", "layer1", "layer2", "layer3", "layer4",
                                         "avgpool", "fc"]
    assert [c.name for c in symbols[2].children] == ["basic()", "basic()"]
    close(client, path)


RENAME_SPEC = """input x: 3x16x16
# unit is a block; this comment and the label `unit_out` keep their names
block unit(c) {
  conv c 3x3 pad=1
  relu
}
unit(8)
unit_out: unit(16), unit(16)
"""


async def test_rename_changes_every_use_and_nothing_else(client, tmp_path):
    path = tmp_path / "rename.cnn"
    await open_text(client, path, RENAME_SPEC)
    references = await client.text_document_references_async(types.ReferenceParams(
        text_document=ident(path.as_uri()), position=position_of(RENAME_SPEC, "unit(8)"),
        context=types.ReferenceContext(include_declaration=True)))
    assert len(references) == 4
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=position_of(RENAME_SPEC, "unit(8)"), new_name="stage"))
    renamed = apply_edits(RENAME_SPEC, edit.changes[path.as_uri()])
    assert renamed == (RENAME_SPEC.replace("block unit(", "block stage(").replace("unit(8)", "stage(8)")
                       .replace("unit(16)", "stage(16)"))
    before, after = cnnspec.loads(RENAME_SPEC), cnnspec.loads(renamed)
    assert [(r.path, r.out_shape, r.params) for r in before.rows] == [(r.path, r.out_shape, r.params) for r in after.rows]
    assert await change(client, path, renamed) == []
    # a label: its name alone changes, and the summary's paths with it
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=position_of(renamed, "unit_out:", shift=2), new_name="tail"))
    relabelled = apply_edits(renamed, edit.changes[path.as_uri()])
    assert relabelled == renamed.replace("\nunit_out:", "\ntail:")
    assert [r.path for r in cnnspec.loads(relabelled).rows] == [
        p.replace("unit_out", "tail") for p in (r.path for r in after.rows)]
    assert any(p.startswith("tail.") for p in (r.path for r in cnnspec.loads(relabelled).rows))
    close(client, path)


PASSED_SPEC = """input x: 3x16x16
block unit(c) { conv c 3x3 pad=1 }
block stage(u=unit, c=8) { u(c); u(c) }
stage(unit, 4)
stage()
"""


async def test_a_block_passed_by_name_is_a_use_renamed_with_it(client, tmp_path):
    path = tmp_path / "passed.cnn"
    assert await open_text(client, path, PASSED_SPEC) == []
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=position_of(PASSED_SPEC, "block unit", shift=7), new_name="cell"))
    renamed = apply_edits(PASSED_SPEC, edit.changes[path.as_uri()])
    assert renamed == PASSED_SPEC.replace("block unit(", "block cell(").replace("u=unit", "u=cell").replace(
        "stage(unit,", "stage(cell,")
    assert [(r.path, r.params) for r in cnnspec.loads(renamed).rows] == [
        (r.path, r.params) for r in cnnspec.loads(PASSED_SPEC).rows]
    close(client, path)


KEYED_SPEC = """input x: 3x16x16
features: { conv 8 3x3 pad=1; relu }
"block1-0": conv 16 3x3 pad=1
classifier.cbr: { conv 16 1x1 bias=false; bn }
features.2: conv 8 1x1
"""


async def test_quoted_and_dotted_labels_in_the_outline_and_renamed(client, tmp_path):
    path = tmp_path / "keyed.cnn"
    assert await open_text(client, path, KEYED_SPEC) == []
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=ident(path.as_uri())))
    assert [s.name for s in symbols] == ["features", "block1-0", "classifier.cbr", "features.2"]
    # a key that is no name is written back quoted; the summary's paths follow
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=position_of(KEYED_SPEC, "block1-0", shift=2),
        new_name="block1-1"))
    renamed = apply_edits(KEYED_SPEC, edit.changes[path.as_uri()])
    assert renamed == KEYED_SPEC.replace('"block1-0"', '"block1-1"')
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=position_of(KEYED_SPEC, "classifier.cbr", shift=12),
        new_name="head.cbr"))
    moved = apply_edits(KEYED_SPEC, edit.changes[path.as_uri()])
    assert moved == KEYED_SPEC.replace("classifier.cbr:", "head.cbr:")
    assert [r.path for r in cnnspec.loads(moved).rows] == [
        r.path.replace("classifier.", "head.") for r in cnnspec.loads(KEYED_SPEC).rows]
    close(client, path)


VALUES_SPEC = """input x: 8x16x16
c1 = conv 8 3x3 pad=1
gate = c1 -> avgpool global, conv 8 1x1, sigmoid
g = scale(c1, gate)
block inner() {
  c1 = conv 8 1x1
  c1 -> relu
}
head: { c1 = conv 4 1x1; c1 -> relu }
top = g -> inner()
c1 = top -> conv 8 1x1
out = add(c1, x)
expect c1 8x16x16
output out, g, x
"""


async def test_named_values_have_definitions_references_and_renames_in_their_module(client, tmp_path):
    path = tmp_path / "values.cnn"
    # binding `c1` again on line 11 is shadowing, the warning W003
    assert [d.code for d in await open_text(client, path, VALUES_SPEC)] == ["W003"]
    lines = VALUES_SPEC.split("\n")

    def at(line: int, word: str, nth: int = 0) -> types.Position:
        column = -1
        for _ in range(nth + 1):
            column = lines[line - 1].index(word, column + 1)
        return types.Position(line=line - 1, character=column + 1)

    # the first `c1`'s reads: the gate's source and `scale`'s operand; not the block's, the labelled
    # group's, nor the reads after it is bound again on line 11
    references = await client.text_document_references_async(types.ReferenceParams(
        text_document=ident(path.as_uri()), position=at(4, "c1"), context=types.ReferenceContext(include_declaration=True)))
    assert sorted((r.range.start.line + 1, r.range.start.character) for r in references) == [(2, 0), (3, 7), (4, 10)]
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=ident(path.as_uri()), position=at(12, "c1")))
    assert (found.range.start.line + 1, found.range.start.character) == (11, 0)
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=ident(path.as_uri()), position=at(12, "x")))
    assert (found.range.start.line + 1, found.range.start.character) == (1, 6)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=at(3, "c1"), new_name="stem"))
    renamed = apply_edits(VALUES_SPEC, edit.changes[path.as_uri()])
    assert renamed.split("\n")[:4] == ["input x: 8x16x16", "stem = conv 8 3x3 pad=1",
                                       "gate = stem -> avgpool global, conv 8 1x1, sigmoid", "g = scale(stem, gate)"]
    assert renamed.split("\n")[4:] == lines[4:]
    # the input, read by `add` and returned by `output`; the rename checks the same
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=at(14, "x"), new_name="image"))
    renamed = apply_edits(VALUES_SPEC, edit.changes[path.as_uri()])
    assert renamed == VALUES_SPEC.replace("input x:", "input image:").replace("add(c1, x)", "add(c1, image)").replace(
        "g, x\n", "g, image\n")
    before, after = cnnspec.loads(VALUES_SPEC), cnnspec.loads(renamed)
    assert [(r.path, r.out_shape) for r in before.rows] == [(r.path, r.out_shape) for r in after.rows]
    assert list(after.output_shapes) == ["out", "g", "image"]
    # a value bound at the end of its module, the `expect` naming it: bound on line 11
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=ident(path.as_uri()), position=at(13, "c1"), new_name="late"))
    renamed = apply_edits(VALUES_SPEC, edit.changes[path.as_uri()])
    assert renamed.split("\n")[10:13] == ["late = top -> conv 8 1x1", "out = add(late, x)", "expect late 8x16x16"]
    assert await change(client, path, renamed) == []  # no longer shadowing
    close(client, path)


# ---------------------------------------------------------------- completion, formatting, code actions

async def completions(client, path: Path, text: str) -> set[str]:
    await change(client, path, text, wait=False)
    lines = text.split("\n")
    answer = await client.text_document_completion_async(types.CompletionParams(
        text_document=ident(path.as_uri()), position=types.Position(line=len(lines) - 1, character=len(lines[-1]))))
    items = answer.items if isinstance(answer, types.CompletionList) else answer
    return {item.label for item in items}


async def test_completion_offers_the_named_values_bound_above_in_the_module(client, tmp_path):
    path = tmp_path / "values.cnn"
    head = ("input x: 3x16x16\nc1 = conv 8 3x3 pad=1\nblock unit() {\n  inner = conv 4 1x1\n  relu\n}\n"
            "gate = c1 -> avgpool global, conv 8 1x1, sigmoid\n")
    await open_text(client, path, head)
    top = {"x", "c1", "gate"}
    assert await completions(client, path, head + "g = scale(c1, ") >= top
    assert "inner" not in await completions(client, path, head + "g = scale(c1, ")
    assert await completions(client, path, head + "both = concat crop(") >= top
    assert await completions(client, path, head + "output ") == top
    assert top <= await completions(client, path, head + "up = gate -> upsample size=")
    labelled = head + "encoder: { conv 8 3x3 pad=1; relu }\nhead: linear 4\n"
    assert await completions(client, path, labelled + "fb = gate -> use ") == {"encoder", "head"}
    assert await completions(client, path, labelled + "fb = gate -> use enc") == {"encoder", "head"}
    starts = await completions(client, path, head + "")
    assert top <= starts and "conv" in starts and "output" in starts
    # inside a block, its own values alone: a block is a module that reads only its input
    text = "input x: 3x16x16\nc1 = conv 8 1x1\nblock unit() {\n  inner = conv 4 1x1\n  out = add(\n}\n"
    await change(client, path, text, wait=False)
    answer = await client.text_document_completion_async(types.CompletionParams(
        text_document=ident(path.as_uri()), position=types.Position(line=4, character=len("  out = add("))))
    assert {item.label for item in (answer.items if isinstance(answer, types.CompletionList) else answer)} == {"inner"}
    close(client, path)


async def test_completion_inside_use_of_a_labelled_call_offers_values_and_its_value_parameters(client, tmp_path):
    path = tmp_path / "again.cnn"
    head = ("input x: 3x8x8\nblock fuse(c, hi, lo) -> (h2, l2) {\n  h2 = add(hi, lo)\n  l2 = lo -> conv c 1x1\n}\n"
            "a = relu\nb = relu\n(h, l) = ex: fuse(3, a, b)\n")
    await open_text(client, path, head)
    offered = await completions(client, path, head + "(p, q) = use ex(")
    # the values above, and `hi=`/`lo=` (not `c=`: an expression parameter keeps the first call's value)
    assert offered == {"x", "a", "b", "h", "l", "hi=", "lo="}
    assert await completions(client, path, head + "(p, q) = use ex(h, ") == offered
    # a label that calls no block over values: the values alone
    assert await completions(client, path, head + "enc: conv 3 1x1\n(p, q) = use enc(") == {"x", "a", "b", "h", "l"}
    close(client, path)


async def test_completion_offers_kinds_options_values_and_blocks(client, tmp_path):
    path = tmp_path / "complete.cnn"
    head = "input x: 3x16x16\nblock unit(c, stride=1) {\n  conv c 3x3\n}\n"
    await open_text(client, path, head)
    assert await completions(client, path, head + "conv 8 3x3 pad_mode=") == {"zeros", "reflect", "replicate",
                                                                             "circular"}
    options = await completions(client, path, head + "conv 8 3x3 ")
    assert {"stride=", "pad=", "pad_mode=", "dilation=", "groups=", "bias=", "depthwise"} <= options
    assert not {"out=", "kernel="} & options
    assert "stride=" not in await completions(client, path, head + "conv 8 3x3 stride=2 ")
    starts = await completions(client, path, head + "co")
    assert set(REGISTRY) <= starts and "unit" in starts and "residual" in starts
    assert await completions(client, path, head + "unit(") >= {"c=", "stride="}
    assert await completions(client, path, head + "block two(k) {\n  conv in.") >= {"c", "h", "w"}
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "blocks.cnn").write_text("block b { relu }\n")
    assert "parts/blocks.cnn" in await completions(client, path, 'import "')
    close(client, path)


MESSY = "input x:3x32x32\nconv 8 3x3   pad=1 # first\n  relu;bn\nlinear_out: {flatten\nlinear 10}\n"


async def test_formatting_equals_cnnspec_fmt(client, tmp_path):
    path = tmp_path / "messy.cnn"
    await open_text(client, path, MESSY)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=ident(path.as_uri()), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    expected = subprocess.run([sys.executable, "-m", "cnnspec", "fmt", "-"], input=MESSY, capture_output=True,
                              text=True, check=True).stdout
    assert expected != MESSY and apply_edits(MESSY, edits) == expected
    close(client, path)


async def code_action_fixes(client, path: Path, text: str, code: str) -> str:
    diagnostics = await change(client, path, text)
    (diagnostic,) = [d for d in diagnostics if d.code == code]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=ident(path.as_uri()), range=diagnostic.range,
        context=types.CodeActionContext(diagnostics=[diagnostic])))
    return apply_edits(text, actions[0].edit.changes[path.as_uri()])


async def test_code_actions_remove_their_diagnostics(client, tmp_path):
    path = tmp_path / "fix.cnn"
    await open_text(client, path, "input x: 3x32x32\n")
    fixed = await code_action_fixes(client, path, "input x: 3x32x32\ncnv 16 3x3\n", "E101")
    assert fixed == "input x: 3x32x32\nconv 16 3x3\n"
    assert await change(client, path, fixed) == []
    fixed = await code_action_fixes(client, path, "input x: 3x32x32\nconv 16 3x3 strde=2\n", "E102")
    assert fixed == "input x: 3x32x32\nconv 16 3x3 stride=2\n"
    # E102 is gone; the stride now read leaves the last row, as check says too
    assert [d.code for d in await change(client, path, fixed)] == ["W101"]
    fixed = await code_action_fixes(client, path, "input x: 3x32x32\nconv 16 3*3\n", "E104")
    assert fixed == "input x: 3x32x32\nconv 16 3x3\n"
    assert await change(client, path, fixed) == []
    fixed = await code_action_fixes(client, path, "input x: 3x32x32\nconv 16 7x7 pad=3\n", "W103")
    assert fixed.startswith("input x: 3x32x32\nconv 16 7x7 pad=3  # cnnspec: ignore[W103] ")
    assert [d.code for d in await change(client, path, fixed)] == []
    broken = "input x: 3x32x32\nresidual {  # a { in a comment\n  conv 64 3x3 stride=2 pad=1\n}\nrelu\n"
    fixed = await code_action_fixes(client, path, broken, "E201")
    assert fixed == broken.replace("\n}\n", "\n} shortcut { conv 64 1x1 stride=2 bias=false; bn }\n")
    assert await change(client, path, fixed) == []
    close(client, path)


# ---------------------------------------------------------------- robustness

SMALL_ZOO = [SPECS / f"{name}.cnn" for name in ("lenet5", "alexnet", "resnet18", "squeezenet1_1")]


@st.composite
def edited(draw):
    path = draw(st.sampled_from(SMALL_ZOO))
    text = path.read_text()
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    inserted = draw(st.one_of(
        st.text(max_size=20),
        st.binary(max_size=20).map(lambda b: b.decode("utf-8", errors="replace")),
        st.sampled_from(["{", "}", "(", ")", "*", "x", "=", ":", '"', "#", "\n", " * 99999", "block ", "import \""]),
    ))
    return path, text[:start] + inserted + text[end:]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=edited())
async def test_random_edits_never_crash_or_hang_the_server(client, case):
    path, text = case
    uri = path.as_uri()
    if uri not in _versions:
        await open_text(client, path, path.read_text())
    await change(client, path, text, wait=False)
    lines = text.split("\n")
    position = types.Position(line=len(lines) // 2, character=0)
    # every feature answers (None or a value, never an error) on whatever the text has become
    await asyncio.wait_for(client.text_document_hover_async(types.HoverParams(text_document=ident(uri),
                                                                              position=position)), ANSWER)
    await asyncio.wait_for(client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=ident(uri), range=types.Range(start=types.Position(line=0, character=0),
                                                    end=types.Position(line=len(lines), character=0)))), ANSWER)
    await asyncio.wait_for(client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=ident(uri))), ANSWER)
    await asyncio.wait_for(client.text_document_completion_async(types.CompletionParams(
        text_document=ident(uri), position=position)), ANSWER)
    assert client.error is None


async def test_completion_from_the_last_parse_equals_a_parse_without_the_line():
    """While a line is typed, completion reads the blocks of the document's last parse instead of
    parsing it again without that line: both give the same items on every line of a spec (but a
    block's header, whose old parameters the last parse keeps, and a line cut before its brace)."""
    from cnnspec.lsp.checking import check_document
    from cnnspec.lsp.completion import complete, program_without_line, same_but_line
    from cnnspec.lsp.convert import Positions

    compared = 0
    for spec in (SPECS / "resnet18.cnn", SPECS / "common" / "resnet.cnn"):  # a network, and blocks
        path = str(spec.resolve())
        last = check_document(path, {path: spec.read_text()})
        assert last.program is not None
        for line0, line in enumerate(last.lines):
            if not line.strip() or line.lstrip().startswith(("block", "#")):
                continue
            typed = list(last.lines)
            typed[line0] = line[:len(line) // 2 + 1]
            if any(typed[line0].count(brace) != line.count(brace) for brace in "{}"):
                continue  # without its braces the text parses in neither way
            assert same_but_line(last.lines, typed, line0)
            positions = Positions(typed, len)
            at = types.Position(line=line0, character=len(typed[line0]))
            again = program_without_line(path, typed, line0, {path: "\n".join(typed)})
            labels = [[item.label for item in complete(typed, positions, at, path, program)]
                      for program in (last.program, again)]
            assert labels[0] == labels[1], typed[line0]
            compared += 1
    assert compared > 20
    assert not same_but_line(last.lines, last.lines[1:], 0)
