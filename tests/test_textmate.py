"""The VS Code extension's TextMate grammar: its regexes compile with Python's `re` (no
Oniguruma-only syntax), and tokenising the zoo with them leaves no keyword or layer kind
unscoped. The tokenizer below follows TextMate's rule for single-line `match` patterns: at each
point the pattern matching earliest wins, the first listed on a tie."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cnnspec.layers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "cnnspec.tmLanguage.json").read_text())
#: the language's keywords, read from the Lark grammar (its quoted words)
KEYWORDS = set(re.findall(r'"([a-z_]+)"', (ROOT / "grammars" / "cnnspec.lark").read_text()))
ZOO = sorted((ROOT / "specs").rglob("*.cnn"))
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def leaf_patterns(patterns=None) -> list[dict]:
    """The grammar's `match` patterns in order, includes expanded."""
    out = []
    for pattern in GRAMMAR["patterns"] if patterns is None else patterns:
        if "include" in pattern:
            out += leaf_patterns([GRAMMAR["repository"][pattern["include"].lstrip("#")]])
        elif "patterns" in pattern:
            out += leaf_patterns(pattern["patterns"])
        else:
            assert set(pattern) <= {"name", "match", "captures"}, f"only match patterns are tokenised: {pattern}"
            out.append(pattern)
    return out


PATTERNS = [(re.compile(p["match"]), p) for p in leaf_patterns()]


def tokenise(line: str) -> list[str | None]:
    """The innermost scope of each character of a line (None where nothing matched)."""
    scopes: list[str | None] = [None] * len(line)
    at = 0
    while at < len(line):
        found = [(m.start(), index, m, p) for index, (regex, p) in enumerate(PATTERNS)
                 if (m := regex.search(line, at)) is not None]
        if not found:
            break
        _, _, match, pattern = min(found, key=lambda f: (f[0], f[1]))
        for i in range(match.start(), match.end()):
            scopes[i] = pattern.get("name")
        for group, capture in pattern.get("captures", {}).items():
            if match.group(int(group)) is not None:
                for i in range(match.start(int(group)), match.end(int(group))):
                    scopes[i] = capture["name"]
        at = max(match.end(), match.start() + 1)
    return scopes


def test_every_regex_compiles_without_oniguruma_syntax():
    for pattern in leaf_patterns():
        re.compile(pattern["match"])  # raises on syntax Python's re lacks (\h, \G, possessive ++, (?~...))
        assert not re.search(r"\\[hHAGzZ]|\(\?~|\+\+|\*\+", pattern["match"]), pattern["match"]


def test_every_layer_kind_and_keyword_has_a_pattern():
    kind_regex = re.compile(GRAMMAR["repository"]["kind"]["match"])
    assert all(kind_regex.fullmatch(kind) for kind in REGISTRY)
    keyword_patterns = [re.compile(p["match"]) for p in GRAMMAR["repository"]["keyword"]["patterns"]]
    assert all(any(r.fullmatch(word) for r in keyword_patterns) for word in KEYWORDS)


@pytest.mark.parametrize("spec", ZOO, ids=[p.relative_to(ROOT / "specs").as_posix() for p in ZOO])
def test_the_zoo_tokenises_with_every_keyword_and_kind_scoped(spec):
    for number, line in enumerate(spec.read_text().split("\n"), start=1):
        scopes = tokenise(line)
        for match in WORD.finditer(line):
            scope = scopes[match.start()]
            if scope is not None and scope.startswith(("comment", "string")):
                continue
            word = match.group()
            if word in KEYWORDS or word in REGISTRY:
                assert scope is not None, f"{spec.name}:{number}: `{word}` unscoped"
        # the kind that starts a layer statement is scoped as a layer kind
        code = line.split("#")[0]
        statement = re.match(r"\s*(?:[A-Za-z_][A-Za-z0-9_]*(?:\{[0-9]*\})?\s*:(?!=)\s*)?([A-Za-z_][A-Za-z0-9_]*)(?=\s|$)",
                             code)
        if statement and statement.group(1) in REGISTRY:
            assert scopes[statement.start(1)] == "support.function.layer.cnn", f"{spec.name}:{number}"


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
