"""Parse `.cnn` text with the Lark grammar and build the surface IR.

One LALR parser per thread, built once, builds the IR as it parses (`SpecBuilder`). Parse
failures become located `Diagnostic`s with the common mistakes named; nothing from Lark
escapes.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from cnnspec import ir
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SpecError
from cnnspec.frontend import lalr_loop
from cnnspec.frontend.build import SpecBuilder, validate
from cnnspec.resources import grammar_path

#: Refuse sources larger than this before parsing (bytes).
MAX_SOURCE_BYTES = 2_000_000
#: Refuse bracket nesting deeper than this before parsing.
MAX_NESTING = 100
#: Refuse a file of more tokens than this before parsing (the default of `Limits.max_tokens`):
#: the parse takes about 30 µs and 2.5 kB a token, and the zoo's largest file has 701.
MAX_TOKENS = 100_000
#: Refuse an expression of more operators than this before parsing: each nests the IR one level
#: deeper, and past a few hundred it cannot be validated (E012 at the expression) anyway.
MAX_OPERATORS = 1_000
#: E124, where the layer limit is crossed: written out before the parse, or expanded after it
LAYER_LIMIT_MESSAGE = "the spec expands to more than {:,} layers"
LAYER_LIMIT_HELP = "check the repeat counts and nested blocks, or raise `max-layers` in `[tool.cnnspec.limits]`"


#: how Lark's parser of the grammar is made (`Parsing.lark`), the tables read off it too
LARK_OPTIONS = {"parser": "lalr", "maybe_placeholders": True}


class Parsing:
    """One thread's parsing: its IR builder, the quick loop over the grammar's tables
    (`cnnspec.frontend.lalr_loop`), and Lark's own parser, made only for a text the loop does
    not parse (Lark's parse is what reports a syntax error) or where no tables were kept."""

    def __init__(self) -> None:
        self.builder = SpecBuilder()
        self._lark: Lark | None = None
        tables = grammar_tables(self)
        self.loop = lalr_loop.Loop(tables, self.builder) if tables is not None else None

    def lark(self) -> Lark:
        if self._lark is None:
            # Lark keeps the LALR tables it builds in a cache, keyed by the grammar's hash:
            # building them takes longer than checking a whole network
            kept = cache_file("lark", "pickle")
            self._lark = Lark(_grammar_text(), **LARK_OPTIONS, transformer=self.builder,
                              cache=str(kept) if kept is not None else True)
        return self._lark


_per_thread = threading.local()


def parser() -> Parsing:
    """This thread's parsing; its builder's `path` is set before each parse, so threads do not
    share one."""
    if not hasattr(_per_thread, "parsing"):
        _per_thread.parsing = Parsing()
    return _per_thread.parsing


@functools.cache
def _grammar_text() -> str:
    return grammar_path().read_text(encoding="utf-8")


_tables_made = threading.Lock()
#: the grammar's tables, once read in this process (None: none could be read off Lark)
_TABLES: list = []


def grammar_tables(parsing: Parsing) -> lalr_loop.Tables | None:
    """The grammar's parse tables as the loop reads them: from the file kept in the cache folder
    (`cache_file`), or read off Lark's parser (`parsing.lark()`) and kept there for the next
    process. A file that cannot be read or written only costs the time of reading them off."""
    with _tables_made:
        if not _TABLES:
            _TABLES.append(_kept_tables() or _read_off(parsing))
        return _TABLES[0]


def cache_folder() -> Path | None:
    """The user's own cache folder for cnnspec, `$XDG_CACHE_HOME/cnnspec` or `~/.cache/cnnspec`,
    made if need be; None where there is none. The user's, not the shared temporary folder: what
    is read from there decides how every spec parses, and no other user can write it."""
    import os

    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(base) / "cnnspec"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # no home, or a folder that cannot be made
        return None
    return folder


def cache_file(what: str, suffix: str) -> Path | None:
    """Where something made from the grammar is kept (None: nowhere), under a name that changes
    with the grammar, the options Lark makes its parser with, Lark's version, the tables' format
    and Python's version (marshal's format)."""
    import hashlib

    import lark

    folder = cache_folder()
    if folder is None:
        return None
    made_by = f"{_grammar_text()}{sorted(LARK_OPTIONS.items())}{lark.__version__}{lalr_loop.FORMAT}{sys.version_info[:2]}"
    return folder / f"{what}-{hashlib.sha256(made_by.encode()).hexdigest()[:32]}.{suffix}"


def _kept_tables() -> lalr_loop.Tables | None:
    import marshal

    kept = cache_file("tables", "marshal")
    if kept is None:
        return None
    try:
        return lalr_loop.Tables(marshal.loads(kept.read_bytes()))
    except (OSError, EOFError, ValueError, TypeError, lalr_loop.Unparsed):
        return None


def _read_off(parsing: Parsing) -> lalr_loop.Tables | None:
    import marshal
    import os

    try:
        tables = lalr_loop.Tables.read_off(parsing.lark())
    except lalr_loop.Unparsed:
        return None
    kept = cache_file("tables", "marshal")
    if kept is not None:
        # written whole under another name, then renamed: a process reading meanwhile sees all or none
        partial = kept.with_name(f"{kept.name}.{os.getpid()}.partial")
        try:
            partial.write_bytes(marshal.dumps(tables.data()))
            os.replace(partial, kept)
        except (OSError, ValueError):
            partial.unlink(missing_ok=True)
    return tables


#: keywords the grammar also accepts as option names (`scale=2`)
KEYWORD_OPTIONS = ("scale", "add", "concat")

#: Syntax errors reported per file before giving up on recovery.
MAX_SYNTAX_ERRORS = 10


#: lines of top-level statements parsed together as one part (`ParsedParts`)
PART_LINES = 64

#: what a scan for the ends of top-level statements looks at: strings and comments (skipped),
#: a line continued with `\`, brackets and newlines
_PART_SCAN = re.compile(r'"[^"\n]*"?|#[^\n]*|\\\r?\n|[(){}\[\]]|\n')
#: a line starting with `else`, after blank and comment lines: it continues the statement before
_ELSE_NEXT = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*else(?![A-Za-z0-9_])")


class ParsedParts:
    """The parts of one file's text parsed last, for the next parse of the file to reuse.

    An editor re-checks a file on every keystroke, and most keystrokes change one statement of
    it. The text is cut into parts of whole top-level statements (`PART_LINES` lines or a few
    more, ending where a statement ends at the top level); a part whose text and first line are
    unchanged keeps its statements, and only the others are parsed. A part is parsed as the
    whole text is, preceded by newlines so that every span is where it is in the file."""

    def __init__(self) -> None:
        self.parts: dict[tuple[int, str], tuple] = {}


def top_level_parts(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each part: consecutive top-level statements, cut after a newline
    outside brackets, strings and comments, once a part holds `PART_LINES` lines, unless the
    next statement line starts with `else` (which continues a `when`). Joined, the parts are
    the text."""
    parts, start, start_line, line, depth = [], 0, 1, 1, 0
    for match in _PART_SCAN.finditer(text):
        token = match.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth = max(depth - 1, 0)
        elif token[0] == "\\":
            line += 1
        elif token == "\n":
            line += 1
            end = match.end()
            if depth == 0 and line - start_line >= PART_LINES and not _ELSE_NEXT.match(text, end):
                parts.append((start_line, text[start:end]))
                start, start_line = end, line
    if start < len(text) or not parts:
        parts.append((start_line, text[start:]))
    return parts


def parse_text(text: str, path: str, max_tokens: int = MAX_TOKENS, max_layers: int | None = None,
               reuse: ParsedParts | None = None) -> ir.SpecFile:
    """Parse one spec file's text; raises `SpecError` with located diagnostics. `max_layers`, for
    the network's own file, refuses more layers written where they are surely expanded. With
    `reuse`, the text is parsed in parts and the parts unchanged since its last parse are taken
    from there (`ParsedParts`); a part that does not parse has the whole text parsed as below.

    After a syntax error the offending line is blanked (its braces kept, so the nesting
    stays whole) and the text parsed again, so one run reports every broken line.
    """
    _check_size(text, path, max_tokens, max_layers)
    if reuse is not None:
        spec = _parse_in_parts(text, path, reuse)
        if spec is not None:
            return spec
    source = text if text.endswith("\n") else text + "\n"
    lines = source.split("\n")
    diagnostics: list[Diagnostic] = []
    blanked: set[int] = set()
    parsing = parser()
    builder = parsing.builder
    while True:
        current = "\n".join(lines)
        try:
            statements = _parse(parsing, current, path)
            break
        except UnexpectedInput as error:
            diagnostic = describe_syntax_error(error, current, path)
            at_end = diagnostic.code == Code.UNCLOSED_BRACKET or isinstance(error, UnexpectedEOF) or (
                isinstance(error, UnexpectedToken) and error.token.type == "$END")
            if at_end and blanked:
                # an unclosed bracket found after blanking lines may be of the blanking's making
                break
            diagnostics.append(diagnostic)
            line = getattr(error, "line", -1)
            recoverable = not at_end and 0 < line <= len(lines) and line not in blanked
            if not recoverable or len(diagnostics) >= MAX_SYNTAX_ERRORS:
                break
            blanked.add(line)
            lines[line - 1] = _braces_of(lines[line - 1])
    # numbers out of range, as the last parse read them
    diagnostics += builder.problems
    if diagnostics:
        raise SpecError(diagnostics)
    return validate(statements, path)


def _parse_in_parts(text: str, path: str, reuse: ParsedParts) -> ir.SpecFile | None:
    """The text parsed part by part, unchanged parts reused; None when a part does not parse (or
    holds a number out of range), for the whole text's parse to report it."""
    parsing = parser()
    builder = parsing.builder
    kept: dict[tuple[int, str], tuple] = {}
    statements: list = []
    for key in top_level_parts(text):
        done = reuse.parts.get(key)
        if done is None:
            first_line, part = key
            try:
                built = _parse(parsing, "\n" * (first_line - 1) + part, path)
            except UnexpectedInput:
                return None
            if builder.problems:
                return None
            done = validate(built, path).statements
        kept[key] = done
        statements.extend(done)
    reuse.parts = kept
    return ir.SpecFile.model_construct(path=path, statements=tuple(statements))


def _parse(parsing: Parsing, text: str, path: str) -> list:
    """The statements of `text` (from the file `path`), as Lark's parse builds them: by the
    quick loop of `cnnspec.frontend.lalr_loop`, or where it stops (at a syntax error) by Lark's own
    parse, which raises Lark's exception."""
    builder = parsing.builder
    builder.begin(path)
    if parsing.loop is not None:
        try:
            return lalr_loop.parse(parsing.loop, text)
        except lalr_loop.Unparsed:
            builder.begin(path)
    return parsing.lark().parse(text)


def _braces_of(line: str) -> str:
    """A broken line blanked to its braces, so that the nesting stays whole. A group closed then
    another opened (`} else {`, `{ relu } { relu }`) keeps a `;` between: `}{` does not parse, and
    would be reported as a second error on the same line."""
    return "".join(char for char in line.split("#")[0] if char in "{}").replace("}{", "};{")


#: the grammar's tokens as the pre-parse count sees them: a separator with the blank lines and
#: comments around it is one (as `_SEP` is), a number, dimensions or a quantity is one
_SCAN = re.compile(r"""(?P<sep>(?:[ \t]*(?:\#[^\n]*)?(?:\r?\n|;))+)|(?P<space>[ \t]+|\\\r?\n|\#[^\n]*)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>[0-9][0-9A-Za-z_.]*)|(?P<string>"[^"\n]*")
    |(?P<open>[{(\[])|(?P<close>[})\]])|(?P<end>,)|(?P<op>//|==|!=|<=|>=|[-+*/%<>])|(?P<other>.)""", re.X | re.S)
_WORD_OPERATORS = frozenset({"not", "and", "or", "if"})
#: words after which a statement's group may not be expanded where it is written
_GUARDS = frozenset({"block", "when", "else", "shortcut"})


def _check_size(text: str, path: str, max_tokens: int = MAX_TOKENS, max_layers: int | None = None) -> None:
    """Refuse, before Lark sees it, a text whose parse would take long or nest too deeply: more
    than MAX_SOURCE_BYTES, more than `max_tokens` tokens, brackets deeper than MAX_NESTING, or an
    expression of more than MAX_OPERATORS operators (`not not ... x`, `1+1+...`). One pass of a
    regular expression, stopped at the token that crosses a limit, which is where it points.

    With `max_layers`, a statement that starts with a layer kind outside any block, `when` or
    `shortcut` (each such one is expanded at least once) counts a layer, so a flat list of more
    layers than the limit is refused before the parse too (E124), not after it."""
    if len(text) > MAX_SOURCE_BYTES:
        raise SpecError([Diagnostic(code=Code.SPEC_TOO_LARGE, message=f"spec is too large ({len(text):,} characters; the limit is {MAX_SOURCE_BYTES:,})",
                                    span=_point(path, 1, 1))])
    kinds = _layer_kinds() if max_layers is not None else frozenset()
    tokens = depth = operators = layers = 0
    # whether a statement starts here, whether its words hold a guard, and the depth of the
    # outermost guarded group (inside it nothing is counted)
    start, guarded, skipped = True, False, None
    for match in _SCAN.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            continue
        tokens += 1
        if tokens > max_tokens:
            _refuse(text, path, match, f"the spec has more than {max_tokens:,} tokens", f"token {tokens:,}",
                    "write repeated parts as blocks and repeats, or raise `max-tokens` in `[tool.cnnspec.limits]`")
        value = match.group()
        if start and skipped is None and kind == "word" and value in kinds:
            layers += 1
            if layers > max_layers:
                _refuse(text, path, match, LAYER_LIMIT_MESSAGE.format(max_layers), "the limit is crossed here",
                        LAYER_LIMIT_HELP, code=Code.TOO_MANY_LAYERS, notes=(f"{max_layers:,} layers before it",))
        start = kind == "sep" or value in ("{", ":")
        if kind == "op" or kind == "word" and value in _WORD_OPERATORS:
            operators += 1
            if operators > MAX_OPERATORS:
                _refuse(text, path, match, f"an expression has more than {MAX_OPERATORS:,} operators",
                        "too long here", "split the expression into named blocks or shorter steps")
        elif kind == "word":
            guarded = guarded or value in _GUARDS
        elif kind == "open":
            depth += 1
            if depth > MAX_NESTING:
                _refuse(text, path, match, f"brackets nest deeper than {MAX_NESTING} levels", "too deep here",
                        "split the structure into named blocks")
            if value != "(":
                operators = 0
            if value == "{":
                skipped = depth if guarded and skipped is None else skipped
                guarded = False
        elif kind == "close":
            if value == "}" and skipped == depth:
                skipped = None
            depth = max(0, depth - 1)
            if value != ")":
                operators = 0
        elif kind == "sep":
            operators, guarded = 0, False
        elif kind == "end":
            operators = 0


def _layer_kinds() -> frozenset[str]:
    from cnnspec.layers import REGISTRY

    return frozenset(REGISTRY)


def _refuse(text: str, path: str, match: re.Match, message: str, label: str, help: str, code: Code = Code.SPEC_TOO_LARGE,
            notes: tuple[str, ...] = ()) -> None:
    start = match.start()
    line = text.count("\n", 0, start) + 1
    column = start - text.rfind("\n", 0, start)
    raise SpecError([Diagnostic(code=code, message=message, label=label, help=help, notes=notes,
                                span=_point(path, line, column, max(1, len(match.group().split("\n")[0]))))])


def _point(path: str, line: int, column: int, length: int = 1) -> ir.Span:
    return ir.Span(file=path, line=line, column=column, end_line=line, end_column=column + length)


# ---------------------------------------------------------------- friendly syntax errors

_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "DIMS": "dimensions like `3x3`",
    "STRING": "a quoted path", "QUANTITY": "a quantity like `5M`", "CMPOP": "a comparison",
    "_SEP": "a new line", "LBRACE": "`{`", "RBRACE": "`}`", "LPAR": "`(`", "RPAR": "`)`",
    "LSQB": "`[`", "RSQB": "`]`", "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "STAR": "`*`",
    "MINUS": "`-`", "PLUS": "`+`", "SLASH": "`/`", "DSLASH": "`//`", "PERCENT": "`%`", "DOT": "`.`",
    "$END": "the end of the file", "TRUE": "`true`", "FALSE": "`false`", "IF": "`if`", "ELSE": "`else`",
}


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_SEP":
        return "end of line" if "\n" in token.value else "`;`"
    if token.type == "ELSE":
        return "`else`"
    return f"`{token.value}`"


def _token_start(token: Token) -> tuple[int, int]:
    """Where a token's own text begins: an `else` token takes in the line breaks before it."""
    if token.type != "ELSE":
        return token.line, token.column
    before = token.value[:token.value.rindex("else")]
    if "\n" not in before:
        return token.line, token.column + len(before)
    return token.line + before.count("\n"), len(before) - before.rindex("\n")


def _expected(names: set[str]) -> str:
    words = []
    for name in sorted(names):
        word = _TERMINAL_WORDS.get(name)
        if word is None and name.isupper():
            word = f"`{name.lower()}`"
        if word and word not in words:
            words.append(word)
    if not words:
        return ""
    if len(words) > 6:
        words = words[:6] + ["..."]
    return "expected " + ", ".join(words)


def describe_syntax_error(error: UnexpectedInput, source: str, path: str) -> Diagnostic:
    lines = source.splitlines()
    if isinstance(error, UnexpectedCharacters):
        char = source[error.pos_in_stream] if error.pos_in_stream < len(source) else "?"
        span = _point(path, error.line, error.column)
        helps = {"'": "strings are written with double quotes", "@": None, "$": None}
        return Diagnostic(code=Code.UNEXPECTED_CHARACTER, message=f"unexpected character `{char}`",
                          span=span, label="not part of the language", help=helps.get(char))
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        return _unclosed(source, path) or Diagnostic(code=Code.UNEXPECTED_TOKEN, message="unexpected end of file",
                                                     span=_point(path, max(1, len(lines)), 1))
    assert isinstance(error, UnexpectedToken)
    token = error.token
    line, column = _token_start(token)
    length = {"_SEP": 1, "ELSE": 4}.get(token.type) or max(1, len(token.value.split("\n")[0]))
    if token.type == "_SEP":
        # point just after the last real character of the line
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        column = len(text.split("#")[0].rstrip()) + 1
    span = _point(path, line, column, length)
    expected = set(error.expected)
    found = _describe_token(token)
    if token.type == "STAR":
        return Diagnostic(code=Code.REPEATED_LAYER_WITH_ARGUMENTS, message="a layer with arguments cannot be repeated with `*`",
                          span=span, label="repetition needs a block call or a group",
                          help="wrap the layer in braces: `{ conv 64 3x3 pad=1 } * 2`")
    rest = lines[line - 1][column - 1:] if 0 < line <= len(lines) else ""
    unquoted = token.type == "MINUS" and _UNQUOTED_LABEL.match(_statement_text(lines, token) + rest)
    if unquoted:
        key = unquoted.group(1)
        return Diagnostic(code=Code.UNEXPECTED_TOKEN, message="a label holding `-` is written in quotes", span=span,
                          label="read as a minus sign", help=f'write `"{key}":`')
    if token.type in ("MINUS", "LPAR") and "NAME" in expected and "_SEP" in expected:
        return Diagnostic(code=Code.SIGNED_POSITIONAL, message=f"a positional argument cannot start with {found}",
                          span=span, label="ambiguous here",
                          help="write the value as an option, such as `slope=-0.2`")
    if token.type == "RBRACE" or (token.type == "_SEP" and "RBRACE" in expected and len(expected) <= 2):
        unclosed = _unclosed(source, path)
        if unclosed is not None and token.type == "$END":
            return unclosed
    in_expect = _statement_words(lines, token)[:1] == ["expect"]
    if token.type == "EQUAL" and in_expect:
        return Diagnostic(code=Code.UNEXPECTED_TOKEN, message="unexpected `=`", span=span,
                          label="`expect` compares with `==`", help="write `==`, such as `expect params == 100`")
    number = _number_before(lines, token)
    if in_expect and token.type == "NAME" and token.value in ("m", "g", "t") and number:
        return Diagnostic(code=Code.UNEXPECTED_TOKEN, message=f"unexpected {found}", span=span,
                          label="not a unit", help=f"quantities take `k`, `M`, `G` and `T`: write "
                                                   f"`{number}{token.value.upper()}`")
    if token.type == "EQUAL":
        return Diagnostic(code=Code.UNEXPECTED_TOKEN, message="unexpected `=`", span=span,
                          label="an option needs a name before `=`",
                          help="options are written `key=value` with no spaces, after the positional arguments")
    if token.type == "COLON":
        return Diagnostic(code=Code.UNEXPECTED_TOKEN, message="unexpected `:`", span=span,
                          label="a label must start its statement",
                          help="labels are written `name: layer`, one per statement")
    if expected == {"EQUAL"}:
        # a keyword (`scale`, `add`, `concat`) read as an option name, as in `mul scale`
        before = lines[token.line - 1][:token.column - 1] if 0 < token.line <= len(lines) else ""
        words = before.split("#")[0].split()
        word = words[-1] if words else ""
        if word in KEYWORD_OPTIONS:
            return Diagnostic(code=Code.UNEXPECTED_TOKEN, message=f"unexpected {found} after the keyword `{word}`",
                              span=span, label="expected `=`",
                              help=f"`{word}` is a keyword, read here as an option name; to pass a value named "
                                   f"`{word}`, give it as an option (such as `factor={word}`) or rename it")
    if "_SEP" in expected:
        label = "expected the end of the statement (a new line or `;`)"
    else:
        label = _expected(expected) or "not expected here"
    return Diagnostic(code=Code.UNEXPECTED_TOKEN, message=f"unexpected {found}", span=span, label=label)


#: a statement that starts with a label holding `-`, such as `block1-0:`
_UNQUOTED_LABEL = re.compile(r"\s*([A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]*)+)\s*:(?!=)")


def _statement_text(lines: list[str], token: Token) -> str:
    """The text of the statement before `token`, on its line."""
    return _text_before(lines, token).split("#")[0].split(";")[-1]


def _text_before(lines: list[str], token: Token) -> str:
    """The text of `token`'s line before it."""
    return lines[token.line - 1][:token.column - 1] if 0 < token.line <= len(lines) else ""


def _statement_words(lines: list[str], token: Token) -> list[str]:
    """The words of the statement before `token`, on its line."""
    return _text_before(lines, token).split("#")[0].split(";")[-1].split()


def _number_before(lines: list[str], token: Token) -> str:
    """The number written right before `token` (`5` of `5m`), or ''."""
    # not preceded by a digit: the same match, found without scanning a long run of digits from
    # each of its positions (quadratic: 5.8 s for a line of 8,800 digits before a space)
    match = re.search(r"(?<!\d)\d+(\.\d+)?$", _text_before(lines, token))
    return match.group() if match else ""


def _unclosed(source: str, path: str) -> Diagnostic | None:
    """The innermost bracket left open at the end of the file, if any."""
    stack = []
    line, column = 1, 0
    in_comment = False
    for char in source:
        column += 1
        if char == "\n":
            line, column, in_comment = line + 1, 0, False
            continue
        if in_comment:
            continue
        if char == "#":
            in_comment = True
        elif char in "{([":
            stack.append((char, line, column))
        elif char in "})]" and stack:
            stack.pop()
    if not stack:
        return None
    char, line, column = stack[-1]
    closing = {"{": "}", "(": ")", "[": "]"}[char]
    return Diagnostic(code=Code.UNCLOSED_BRACKET, message=f"unclosed `{char}`", span=_point(path, line, column),
                      label=f"this `{char}` is never closed", help=f"add the matching `{closing}`")
