"""Lark's LALR parse of a text, run by one loop of its own.

Lark reads a token through a generator, a lexer object per parser state and a line counter,
and feeds it to the parser through a method call; that handling, per token, took a quarter
of a 10,000-layer spec's parse. `parse` does what `Lark.parse` does for the contextual lexer
(each state's own terminals, keywords retyped by the lexer's callbacks, ignored terminals
skipped, then shifts and reductions with the tables' callbacks, which build the IR) in one
loop over Lark's own tables, lexers and callbacks, so its result is Lark's. It handles valid
texts only: at anything else (a character no terminal matches, a token the state does not
take, or a Lark whose internals differ) it raises `Unparsed`, and Lark's own parse of the text
is what reports the error (`tests/test_spans.py` holds the two parses to the same results).

Each state's lexer is an alternation of its terminals, compiled when the state is first met:
ResNet-50's parse meets 42, whose compiling took longer than its parse. Most states read with
the root lexer's one alternation instead (`_Reading`), which gives the state's token wherever
its token is one the state takes; elsewhere the state's own lexer reads it.
"""

from __future__ import annotations

import weakref

from lark import Lark, Token
from lark.lexer import UnlessCallback
from lark.parse_tree_builder import ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

#: a token made as `Token(...)` makes it, less its handling of a deprecated keyword argument (half
#: its cost, once per token)
_token = getattr(Token, "_future_new", Token)


class Unparsed(Exception):
    """The loop met what Lark's own parse must handle: a syntax error, or unknown internals."""


def parse(lalr: Lark, text: str):
    """What `lalr.parse(text)` returns, for a text that parses; else `Unparsed`."""
    tables = _TABLES.get(lalr) or _tables(lalr)
    root, readings, rows = tables.root, tables.readings, tables.rows
    state_stack = [tables.start]
    end_state = tables.end
    value_stack: list = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    last = None
    while True:
        # the next token, as the current state's lexer reads it
        token = None
        while pos < end:
            state = state_stack[-1]
            reading = readings.get(state) or tables.reading(state)
            kind = None
            if reading.shared:
                for pattern in root.patterns:
                    found = pattern.match(text, pos)
                    if found:
                        kind = found.lastgroup
                        keywords = root.keywords.get(kind)
                        if keywords is not None:
                            kind = keywords.fullmatch(found.group(0)) or kind
                        if kind not in reading.names:
                            kind = None  # not a token of this state: its own lexer reads on
                        break
            if kind is None:
                for pattern in reading.own_patterns():
                    found = pattern.match(text, pos)
                    if found:
                        break
                else:
                    raise Unparsed
                kind = found.lastgroup
                retype = reading.lexer.callback.get(kind)
            else:
                retype = None
            value = found.group(0)
            start, start_line, column = pos, line, pos - line_start + 1
            if kind in reading.newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if kind in reading.ignore_types and retype is None:
                continue
            token = _token(kind, value, start, start_line, column, line, pos - line_start + 1, pos)
            if retype is not None:
                token = retype(token)
            if token.type in reading.ignore_types:
                token = None
                continue
            break
        at_end = token is None
        if at_end:
            token = Token.new_borrow_pos("$END", "", last) if last is not None else Token("$END", "", 0, 1, 1)
        last = token
        kind = token.type
        # fed to the parser: reductions until it shifts the token (or accepts the text)
        while True:
            top = state_stack[-1]
            try:
                target, size, callback, origin = (rows.get(top) or tables.row(top))[kind]
            except KeyError:
                raise Unparsed from None
            if size is None:  # a shift
                state_stack.append(target)
                value_stack.append(token if callback is None else callback(token))
                break
            if callback is None:  # a rule of one symbol that passes its value on (`?rule`)
                below = state_stack[-2]
                state = state_stack[-1] = (rows.get(below) or tables.row(below))[origin][0]
                if at_end and state == end_state:
                    return value_stack[-1]
                continue
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value = callback(children)
            state = (rows.get(state_stack[-1]) or tables.row(state_stack[-1]))[origin][0]
            state_stack.append(state)
            value_stack.append(value)
            if at_end and state == end_state:
                return value


class _Tables:
    """A parser's tables as the loop reads them, made once per parser and kept beside it.

    `rows`: each state's actions by token or rule name, made on the state's first use: a shift
    as `(state, None, the token's callback, None)`, a reduction as `(None, the rule's length,
    its callback, the rule's name)`, so no step hashes a rule, and a goto as the first. A rule of
    one symbol written `?rule` has no callback: its value is its child's, left on the stack."""

    def __init__(self, lalr: Lark):
        try:
            frontend = lalr.parser
            self.lexers = frontend.lexer.lexers
            self.root = _Root(frontend.lexer.root_lexer)
            table = frontend.parser.parser.parse_table
            self.callbacks = frontend.parser.parser.callbacks
            self.states = table.states
            self.start, self.end = table.start_states["start"], table.end_states["start"]
        except AttributeError:
            raise Unparsed from None
        self.readings: dict[int, _Reading] = {}
        self.rows: dict[int, dict[str, tuple]] = {}

    def reading(self, state: int) -> "_Reading":
        try:
            found = self.readings[state] = _Reading(self.lexers[state], self.root)
        except AttributeError:
            raise Unparsed from None
        return found

    def row(self, state: int) -> dict[str, tuple]:
        callbacks, row = self.callbacks, {}
        for symbol, (action, argument) in self.states[state].items():
            if action is Shift:
                row[symbol] = (argument, None, callbacks.get(symbol), None)
            else:
                size, callback = len(argument.expansion), callbacks[argument]
                if size == 1 and type(callback) is ExpandSingleChild:
                    callback = None  # it returns its one child as it is
                row[symbol] = (None, size, callback, argument.origin.name)
        self.rows[state] = row
        return row


#: each parser's tables, for as long as the parser lives
_TABLES: "weakref.WeakKeyDictionary[Lark, _Tables]" = weakref.WeakKeyDictionary()


def _tables(lalr: Lark) -> _Tables:
    made = _TABLES[lalr] = _Tables(lalr)
    return made


class _Root:
    """The root lexer (every terminal) as the states read with it: its compiled alternations,
    and for a terminal that keywords are matched as (a name), the keywords' scanner."""

    def __init__(self, lexer):
        scanner = lexer.scanner
        self.patterns = scanner._mres
        self.kept = {t.name for t in scanner.terminals}
        self.keywords: dict = {}
        #: each keyword the root reads as another terminal (`conv` as a name), by those terminals
        self.embedders: dict[str, set[str]] = {}
        for name, callback in lexer.callback.items():
            if not isinstance(callback, UnlessCallback):
                raise Unparsed  # a callback of the grammar's own: every state reads with its lexer
            self.keywords[name] = callback.scanner
            for keyword in callback.scanner.terminals:
                if keyword.name not in self.kept:
                    self.embedders.setdefault(keyword.name, set()).add(name)


class _Reading:
    """How the loop reads a state's next token.

    `shared`: with the root lexer, whose first match is the state's own wherever the state takes
    it. Both alternations order their terminals alike (by priority, width, length and name), so a
    terminal the root finds first that the state has is the first of the state's that matches;
    a name the root reads as a keyword is one to the state too, when the state has the keyword.
    That holds where the state's terminals, less the keywords it reads as names, are among the
    root's: a state holding a keyword but not the terminal the root reads it as (a `conv`
    without names) matches the keyword where the root matches a longer name, and reads alone.
    """

    __slots__ = ("lexer", "names", "shared", "newline_types", "ignore_types", "_own")

    def __init__(self, lexer, root: _Root):
        self.lexer = lexer
        self.names = frozenset(t.name for t in lexer.terminals)
        self.shared = all(name in root.kept or root.embedders.get(name, set()) & self.names for name in self.names)
        self.newline_types, self.ignore_types = lexer.newline_types, lexer.ignore_types
        self._own = None

    def own_patterns(self):
        """The state's own alternations, compiled on first use (by Lark, as its lexer would)."""
        if self._own is None:
            self._own = self.lexer.scanner._mres
        return self._own
