"""The VS Code extension's TextMate grammar: its regexes compile with Python's `re` (no
Oniguruma-only syntax), and tokenising the zoo with them leaves no keyword or layer kind
unscoped. The tokenizer below follows TextMate's rule for single-line `match` patterns: at each
point the pattern matching earliest wins, the first listed on a tie."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "cnnspec.tmLanguage.json").read_text())
#: the language's keywords, read from the Lark grammar (its quoted words)
KEYWORDS = set(re.findall(r'"([a-z_]+)"', (ROOT / "grammars" / "cnnspec.lark").read_text()))
ZOO = sorted((ROOT / "specs").rglob("*.cnn"))
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def rules(patterns=None) -> list[dict]:
    """A pattern list's rules in order, includes expanded: `match` rules, and `begin`/`end`
    rules (a bracket's contents, tokenised with their own patterns)."""
    out = []
    for pattern in GRAMMAR["patterns"] if patterns is None else patterns:
        if "include" in pattern:
            out += rules([GRAMMAR["repository"][pattern["include"].lstrip("#")]])
        elif "patterns" in pattern and "begin" not in pattern:
            out += rules(pattern["patterns"])
        else:
            assert set(pattern) <= {"name", "match", "captures", "comment", "begin", "end", "beginCaptures",
                                    "endCaptures", "patterns"}, f"a rule the tokeniser below cannot follow: {pattern}"
            out.append(pattern)
    return out


def every_regex(patterns=None, seen=None) -> list[str]:
    """Every regular expression of the grammar, inside brackets' rules too."""
    seen = set() if seen is None else seen
    found = []
    for rule in rules(patterns):
        if id(rule) in seen:
            continue
        seen.add(id(rule))
        found += [rule[key] for key in ("match", "begin", "end") if key in rule]
        if "patterns" in rule:
            found += every_regex(rule["patterns"], seen)
    return found


def _scope(scopes, match, name, captures):
    for i in range(match.start(), match.end()):
        scopes[i] = name if name is not None else scopes[i]
    for group, capture in (captures or {}).items():
        if match.group(int(group)) is not None:
            for i in range(match.start(int(group)), match.end(int(group))):
                scopes[i] = capture["name"]


def tokenise_lines(lines: list[str]) -> list[list[str | None]]:
    """The innermost scope of each character of each line (None where nothing matched), as
    TextMate tokenises: at each point the rule matching earliest wins, the first listed on a tie,
    the open bracket's `end` before its inner rules; a `begin` rule's contents are tokenised with
    its own patterns until its `end`, across lines."""
    stack: list[dict] = []  # the open begin/end rules, innermost last
    out = []
    for line in lines:
        scopes: list[str | None] = [None] * len(line)
        at = 0
        while at <= len(line):
            current = rules(stack[-1]["patterns"]) if stack else rules()
            found = []
            if stack:
                end = re.compile(stack[-1]["end"]).search(line, at)
                if end is not None:
                    found.append((end.start(), -1, end, "end"))
            for index, rule in enumerate(current):
                regex = re.compile(rule.get("match") or rule["begin"])
                match = regex.search(line, at)
                if match is not None:
                    found.append((match.start(), index, match, rule))
            if not found:
                break
            _, _, match, rule = min(found, key=lambda f: (f[0], f[1]))
            if rule == "end":
                _scope(scopes, match, None, stack.pop().get("endCaptures"))
            elif "begin" in rule:
                _scope(scopes, match, None, rule.get("beginCaptures"))
                stack.append(rule)
            else:
                _scope(scopes, match, rule.get("name"), rule.get("captures"))
            if match.end() == match.start() and match.start() >= len(line):
                break
            at = max(match.end(), match.start() + (match.end() == match.start()))
        out.append(scopes)
    return out


def tokenise(line: str) -> list[str | None]:
    return tokenise_lines([line])[0]


def test_every_regex_compiles_without_oniguruma_syntax():
    for regex in every_regex():
        re.compile(regex)  # raises on syntax Python's re lacks (\h, \G, possessive ++, (?~...))
        assert not re.search(r"\\[hHAGzZ]|\(\?~|\+\+|\*\+", regex), regex


def test_every_keyword_has_a_pattern_and_no_kind_is_listed():
    keyword_patterns = [re.compile(p["match"]) for p in GRAMMAR["repository"]["keyword"]["patterns"]]
    assert all(any(r.fullmatch(word) for r in keyword_patterns) for word in KEYWORDS)
    # a kind is known by where it stands, so a new kind needs no edit here
    assert not any(kind in regex for regex in every_regex() for kind in ("maxpool", "leaky_relu", "groupnorm"))


def parsed_kinds(text: str, path: str) -> set[tuple[int, int]]:
    """(line, column), 0-based, of every layer kind the parser reads (bare block calls included:
    a bare name is a layer item until the checker resolves it)."""
    from cnnspec.frontend.parser import parse_text
    from cnnspec.lsp.navigation import walk

    found = set()
    for statement in parse_text(text, path).statements:
        for node in walk(statement):
            if node.__class__.__name__ == "Layer":
                found.add((node.kind_span.line - 1, node.kind_span.column - 1))
    return found


@pytest.mark.parametrize("spec", ZOO, ids=[p.relative_to(ROOT / "specs").as_posix() for p in ZOO])
def test_the_zoo_tokenises_with_every_keyword_scoped_and_the_parsers_kinds_as_kinds(spec):
    text = spec.read_text()
    lines = text.split("\n")
    scoped = tokenise_lines(lines)
    kinds = parsed_kinds(text, str(spec))
    for number, (line, scopes) in enumerate(zip(lines, scoped)):
        for match in WORD.finditer(line):
            scope = scopes[match.start()]
            if scope is not None and scope.startswith(("comment", "string")):
                continue
            word = match.group()
            if word in KEYWORDS:
                assert scope is not None, f"{spec.name}:{number + 1}: `{word}` unscoped"
            # a word is scoped as a layer kind exactly where the parser reads a layer's kind
            is_kind = (number, match.start()) in kinds
            assert (scope == "support.function.layer.cnn") == is_kind, f"{spec.name}:{number + 1}: `{word}` {scope}"


def test_shapes_numbers_options_and_comments():
    line = 'conv1: conv 64 7x7 stride=2 pad_mode=reflect  # cnnspec: ignore[W103] the stem'
    scopes = tokenise(line)

    def scope_of(text):
        return scopes[line.index(text)]

    assert scope_of("conv1") == "entity.name.label.cnn"
    assert scope_of("conv ") == "support.function.layer.cnn"
    assert scope_of("64") == "constant.numeric.cnn"
    assert scope_of("7x7") == "constant.numeric.shape.cnn"
    assert scope_of("stride") == "variable.parameter.option.cnn"
    assert scope_of("W103") == "constant.other.diagnostic-code.cnn"
    assert scope_of("the stem") == "comment.line.number-sign.suppression.cnn"
    scopes = tokenise('input x: 3x224x224')
    assert scopes[0] == "keyword.other.declaration.cnn" and scopes[9] == "constant.numeric.shape.cnn"
    scopes = tokenise('import "common/resnet.cnn"')
    assert scopes[0] == "keyword.other.cnn" and scopes[8] == "string.quoted.double.cnn"


#: the language's newer constructs, each a line the zoo may not have
CONSTRUCTS = """input x: 3x32x32
input y: 3x32x32
c1 = stem: { conv 8 3x3 pad=1; bn; relu }
gate = c1 -> avgpool global, conv 8 1x1, sigmoid
g = scale(c1, gate)
both = concat crop(g, c1)
up = both -> upsample size=x, relu, slice 0 8
part = up -> split [4, 4] 1, identity * 2
fb = y -> use stem
block unit(c, act=relu, k=3) { conv c k pad=(k // 2, k // 2); act }
tail = fb -> unit(8, act=sigmoid), *unit(4) ; maxpool 2x2
when (true) { relu }
else { identity }
residual { conv 8 3x3 pad=1 } shortcut when (false) { conv 8 1x1 }
"block1-0": conv 8 1x1 weights=[[1, 2,
  3]] frozen
classifier.cbr: conv 8 1x1 bias=false
expect g 8x32x32
output part, fb, tail
"""


def test_the_newer_constructs_scope_the_parsers_kinds_as_kinds():
    lines = CONSTRUCTS.split("\n")
    kinds = parsed_kinds(CONSTRUCTS, "constructs.cnn")
    scoped = tokenise_lines(lines)
    marked = {(n, i) for n, scopes in enumerate(scoped) for i, scope in enumerate(scopes)
              if scope == "support.function.layer.cnn" and (i == 0 or scopes[i - 1] != scope)}
    assert marked == kinds

