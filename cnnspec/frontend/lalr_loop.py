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

from lark import Lark, Token
from lark.lexer import UnlessCallback
from lark.parsers.lalr_analysis import Shift


class Unparsed(Exception):
    """The loop met what Lark's own parse must handle: a syntax error, or unknown internals."""


def parse(lalr: Lark, text: str):
    """What `lalr.parse(text)` returns, for a text that parses; else `Unparsed`."""
    try:
        frontend = lalr.parser
        lexers = frontend.lexer.lexers
        root = _Root(frontend.lexer.root_lexer)
        table = frontend.parser.parser.parse_table
        callbacks = frontend.parser.parser.callbacks
        states, state_stack = table.states, [table.start_states["start"]]
        end_state = table.end_states["start"]
    except AttributeError:
        raise Unparsed from None
    readings: dict[int, _Reading] = {}
    value_stack: list = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    last = None
    while True:
        # the next token, as the current state's lexer reads it
        token = None
        while pos < end:
            state = state_stack[-1]
            reading = readings.get(state) or _reading(readings, lexers, root, state)
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
            token = Token(kind, value, start, start_line, column, line, pos - line_start + 1, pos)
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
            try:
                action, argument = states[state_stack[-1]][kind]
            except KeyError:
                raise Unparsed from None
            if action is Shift:
                state_stack.append(argument)
                value_stack.append(token if kind not in callbacks else callbacks[kind](token))
                break
            size = len(argument.expansion)
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value = callbacks[argument](children)
            _, state = states[state_stack[-1]][argument.origin.name]
            state_stack.append(state)
            value_stack.append(value)
            if at_end and state == end_state:
                return value


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
        self._lexer = lexer


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


def _reading(readings: dict, lexers: dict, root: _Root, state: int) -> _Reading:
    lexer = lexers[state]
    try:
        found = readings[state] = _Reading(lexer, root)
    except AttributeError:
        raise Unparsed from None
    return found
