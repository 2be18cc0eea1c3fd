"""The builder works out spans itself; Lark's own position tracking is the reference.

For every node of the IR, its span must be the extent Lark's `propagate_positions` gives a
tree node of the rule that built it; a parenthesised expression's may be that of the
brackets around it (the `atom` rule keeps them).
"""

import functools
import marshal
import sys
import threading

import pytest
from conftest import ROOT, SPECS, TESTS
from lark import Lark, Token, Tree
from pydantic import BaseModel

from cnnspec import ir
from cnnspec.diagnostics import SpecError
from cnnspec.frontend import lalr_loop
from cnnspec.frontend.parser import parse_text, parser

#: IR node class -> the grammar rules (or, for literals, token types) that build it
RULES = {
    ir.Layer: {"layer", "bare_layer"}, ir.Call: {"call", "splice"}, ir.Group: {"group"},
    ir.Residual: {"residual"}, ir.Shortcut: {"shortcut"}, ir.Concat: {"concat"}, ir.Add: {"add"},
    ir.Scale: {"scale"}, ir.When: {"when"}, ir.Repeat: {"repeat"}, ir.ItemStatement: {"item_stmt"},
    ir.NetworkDecl: {"network_decl"}, ir.InputDecl: {"input_decl"}, ir.BlockDef: {"block_def"},
    ir.BlockParam: {"block_param"}, ir.Import: {"import_stmt"}, ir.ExpectShape: {"expect_shape"},
    ir.ExpectMetric: {"expect_metric"}, ir.Option: {"option", "kwarg"},
    ir.BinOp: {"binop", "or_op", "and_op"}, ir.UnaryOp: {"not_op", "neg"}, ir.Ref: {"ref"},
    ir.Func: {"func"}, ir.TupleLit: {"tuple"}, ir.ListLit: {"list"}, ir.Bool: {"true", "false"},
    ir.Num: {"INT", "FLOAT"}, ir.Dims: {"DIMS"}, ir.Str: {"STRING"},
    ir.ValueName: {"NAME"}, ir.ValueMerge: {"value_add", "value_scale", "value_concat"},
    ir.OutputDecl: {"output_decl"},
    ir.Use: {"use"},
}
EXPRESSIONS = (ir.BinOp, ir.UnaryOp, ir.Ref, ir.Func, ir.TupleLit, ir.ListLit, ir.Bool, ir.Num, ir.Dims, ir.Str)

SNIPPETS = [
    "network n\ninput x: 3x32x32\nexpect params < 5M\nexpect output 10\n"
    "block b(c, k=3) {\n  conv c k pad=(k - 1) // 2\n}\n"
    "stem: b(16), relu\n"
    "residual { conv 3 3x3 pad=1; bn } shortcut s: when (not in.c == 3 and true) { conv 3 1x1 }\n"
    "concat crop { identity; conv 3 1x1 }\nadd { identity; identity }\nscale { sigmoid }\n"
    "when (in.h > 4 or false) { maxpool 2 } else { identity }\n"
    "{ relu } * (1 + 1)\n*b(3)\nconv 3 3x3 pad=[1, 1] stride=(1, 1) dilation=max(1, 1) bias=false\n"
    "flatten\nlinear 10\n",
    "input x: 3x8x8\na = conv 3 1x1\nb = x -> s: relu, relu\nc = add(a, b)\nscale(a, c)\nconcat crop(a, b, c)\noutput a, c\n",
    "input x: 3x8x8\ninput y: 3x8x8\nenc: { conv 3 1x1 }\nf = y -> use enc\nuse enc.0\n",
    "input x: 3x8x8\nblock f(c, hi, lo) -> (h, l) {\n  h = add(hi, lo -> conv c 1x1)\n  l = lo -> relu\n}\n"
    "a = relu\nb = relu\n(p, q) = ex: f(3, a, b)\n(r, s) = use ex(p, lo=q)\n(t, u) = *f(3, r, s)\n"
    "concat(t, u -> conv 3 1x1, upsample size=t, s -> relu)\nadd(t, u -> { relu; relu }, relu)\n",
    # what the lexer tells apart: keywords as options and inside names, `else` after a blank line and
    # a comment, numbered and quoted labels, quantities, floats, dimensions beside names
    "network lexing  # a comment after a name\n"
    "input x: 3x16x16\n"
    "expect params < 1.5M\n"
    "expect macs < 2G\n"
    "block scaled(concatenate, address=2, x3=1) {\n"
    '  conv concatenate 3x3 pad=address // 2 stride=x3  # "a string in a comment"\n'
    "}\n"
    "stage: { layer{1}: scaled(3) * 2 }; relu\n"
    "addition: conv 3 1x1 bias=false; bn eps=1e-3 momentum=0.25\n"
    "truth: when (true and not false) { upsample scale=2 } else { identity }\n"
    "when (in.h > 100) { maxpool 2 }\n"
    "\n"
    "  # a comment between\n"
    "else { identity }\n"
    "elsewhere: relu\n"
    "trueish: dropout 0.5\n"
    '"quoted label": relu\n'
]


@functools.cache
def lark_extents() -> Lark:
    return Lark((ROOT / "grammars" / "cnnspec.lark").read_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


def extents(tree: Tree) -> dict[str, set[tuple[int, int, int, int]]]:
    """Rule or token type -> the extents Lark gives its nodes."""
    found: dict[str, set] = {}
    for node in tree.iter_subtrees():
        meta = node.meta
        if not meta.empty:
            found.setdefault(node.data, set()).add((meta.line, meta.column, meta.end_line, meta.end_column))
        for child in node.children:
            if isinstance(child, Token):
                found.setdefault(child.type, set()).add((child.line, child.column, child.end_line, child.end_column))
    return found


def nodes(value):
    """Every IR node under `value` with a span."""
    if isinstance(value, BaseModel):
        if "span" in type(value).model_fields and value.span is not None:
            yield value
        for name in type(value).model_fields:
            yield from nodes(getattr(value, name))
    elif isinstance(value, tuple):
        for item in value:
            yield from nodes(item)


def parsable(path):
    try:
        parse_text(path.read_text(), str(path))
    except SpecError:
        return False
    return True


CORPUS = sorted(SPECS.rglob("*.cnn")) + sorted(p for p in (TESTS / "golden").rglob("*.cnn") if parsable(p))
EVERY_TEXT = pytest.mark.parametrize("text", [p.read_text() for p in CORPUS] + SNIPPETS,
                                     ids=[str(p.relative_to(ROOT)) for p in CORPUS] + ["constructs", "values", "sharing",
                                                                                     "blocks over values", "lexing"])


@EVERY_TEXT
def test_every_span_is_the_extent_lark_gives_its_rule(text):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    reference = extents(lark_extents().parse(text))
    spec = parse_text(text, "spec.cnn")
    checked = 0
    for node in nodes(spec):
        span = node.span
        extent = (span.line, span.column, span.end_line, span.end_column)
        rules = RULES[type(node)] | ({"atom"} if isinstance(node, EXPRESSIONS) else set())
        allowed = set().union(*(reference.get(rule, set()) for rule in rules))
        if isinstance(node, ir.ItemStatement) and any(e[:2] == extent[:2] for e in reference.get("operand_chain", ())):
            # a chain in a merge over values (`add(a, b -> conv 3 1x1, relu)`) runs on over the pieces
            # after Lark's `operand_chain`, to its last item's end
            last = node.chain[-1].span
            allowed.add((*extent[:2], last.end_line, last.end_column))
        if isinstance(node, ir.Layer) and not node.args and not node.options:
            # a name among those pieces is a bare layer made of its token
            allowed |= reference.get("NAME", set())
        assert extent in allowed, f"{type(node).__name__} at {extent}: {text.splitlines()[span.line - 1]!r}"
        checked += 1
    assert checked > 0


@EVERY_TEXT
def test_the_unvalidated_nodes_are_what_validation_makes_of_them(text):
    # the builder makes nodes without Pydantic's validation (`Node.built`): validating the
    # tree's dump gives the same tree, field for field (the repr tells 1 from 1.0), in the order
    # declared, and no field is left without a value
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    spec = parse_text(text, "spec.cnn")
    assert repr(ir.SpecFile.model_validate(spec.model_dump())) == repr(spec)
    for node in nodes(spec):
        assert list(node.__dict__) == list(type(node).model_fields), type(node).__name__


@EVERY_TEXT
def test_the_quick_parse_loop_builds_what_larks_parse_builds(text):
    # `parse_text` runs the loop of cnnspec.frontend.lalr_loop; it must neither fall back to
    # Lark's parse on a valid text nor build anything else than it
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    parsing = parser()
    parsing.builder.begin("spec.cnn")
    by_lark = parsing.lark().parse(text)
    parsing.builder.begin("spec.cnn")
    assert lalr_loop.parse(parsing.loop, text) == by_lark


@pytest.mark.parametrize("text", ["input x: 3x8x8\nconv 8 3x3 @\n", "input x: 3x8x8\nconv 8 = 3\n", "input x: 3x8x8\n{ relu\n"])
def test_the_quick_parse_loop_leaves_syntax_errors_to_lark(text):
    parsing = parser()
    parsing.builder.begin("spec.cnn")
    with pytest.raises(lalr_loop.Unparsed):
        lalr_loop.parse(parsing.loop, text)


def _fresh_loop():
    """A loop over tables read off a Lark parser of its own, whose states no other test has read."""
    from cnnspec.frontend.build import SpecBuilder
    from cnnspec.resources import grammar_path

    builder = SpecBuilder()
    lalr = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", maybe_placeholders=True,
                transformer=builder, cache=True)
    return lalr_loop.Loop(lalr_loop.Tables.read_off(lalr), builder), builder


def test_the_loop_reads_most_states_with_the_root_lexer_and_the_rest_with_their_own():
    # on the lexing snippet some states take a token the root lexer reads otherwise, and read
    # with their own alternations, compiled for those states only
    loop, builder = _fresh_loop()
    text = SNIPPETS[-1]
    builder.begin("spec.cnn")
    by_the_loop = lalr_loop.parse(loop, text)
    reference = parser()
    reference.builder.begin("spec.cnn")
    assert by_the_loop == reference.lark().parse(text)
    readings = set(loop.readings.values())
    assert sum(r.shared for r in readings) > 10 * sum(not r.shared for r in readings)
    compiled = [r for r in loop._lexer_readings.values() if r._own is not None]
    assert 0 < len(compiled) < 5


def test_the_tables_kept_as_data_parse_as_the_tables_read_off_lark():
    loop, builder = _fresh_loop()
    again = lalr_loop.Loop(lalr_loop.Tables(marshal.loads(marshal.dumps(loop.tables.data()))), builder)
    for text in SNIPPETS:
        builder.begin("spec.cnn")
        expected = lalr_loop.parse(loop, text)
        builder.begin("spec.cnn")
        assert lalr_loop.parse(again, text) == expected


def test_the_tables_are_kept_for_the_next_process_and_lark_is_made_only_for_errors(tmp_path, monkeypatch):
    from cnnspec.frontend import parser as parsing_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(parsing_module, "_TABLES", [])
    kept = parsing_module.cache_file("tables", "marshal")
    assert kept.parent == tmp_path / "cnnspec" and not kept.exists()
    assert (kept.parent.stat().st_mode & 0o777) == 0o700  # the user's own
    first = parsing_module.Parsing()  # reads them off Lark, and keeps them
    assert kept.stat().st_size > 0 and first._lark is not None
    assert list(kept.parent.glob("lark-*.pickle"))  # and Lark's own cache beside them
    monkeypatch.setattr(parsing_module, "_TABLES", [])
    second = parsing_module.Parsing()  # a process after it: from the file, without Lark
    assert second._lark is None and second.loop.tables.data() == first.loop.tables.data()
    monkeypatch.setattr(parsing_module, "_per_thread", threading.local())
    monkeypatch.setattr(parsing_module, "_TABLES", [second.loop.tables])
    parse_text(SNIPPETS[0], "spec.cnn")
    assert parsing_module.parser()._lark is None
    with pytest.raises(SpecError):
        parse_text("input x: 3x8x8\nconv 8 3x3 @\n", "spec.cnn")
    assert parsing_module.parser()._lark is not None
    # a file spoilt or of another format is read off Lark again, and replaced
    for spoilt in (b"", b"\x00garbage", marshal.dumps({"format": -1})):
        kept.write_bytes(spoilt)
        monkeypatch.setattr(parsing_module, "_TABLES", [])
        assert parsing_module.Parsing().loop is not None
        assert lalr_loop.Tables(marshal.loads(kept.read_bytes())).data() == first.loop.tables.data()


def test_without_a_cache_folder_the_tables_are_read_off_lark_each_time(tmp_path, monkeypatch):
    from cnnspec.frontend import parser as parsing_module

    blocked = tmp_path / "a file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # no folder can be made inside a file
    monkeypatch.setattr(parsing_module, "_TABLES", [])
    monkeypatch.setattr(parsing_module, "_per_thread", threading.local())
    assert parsing_module.cache_folder() is None
    assert parse_text(SNIPPETS[0], "spec.cnn").statements
    assert parsing_module.parser().loop is not None


def test_keyword_led_constructs_start_at_their_keyword():
    spec = parse_text(SNIPPETS[0], "spec.cnn")
    lines = SNIPPETS[0].splitlines()
    starts = {type(n).__name__: lines[n.span.line - 1][n.span.column - 1:] for n in nodes(spec)}
    assert starts["Residual"].startswith("residual {")
    assert starts["Shortcut"].startswith("shortcut s:")
    assert starts["When"].startswith("when (in.h")
    assert starts["BlockDef"].startswith("block b(")
    assert starts["ExpectMetric"].startswith("expect params")
