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
"""

from __future__ import annotations

from lark import Lark, Token
from lark.parsers.lalr_analysis import Shift


class Unparsed(Exception):
    """The loop met what Lark's own parse must handle: a syntax error, or unknown internals."""


def parse(lalr: Lark, text: str):
    """What `lalr.parse(text)` returns, for a text that parses; else `Unparsed`."""
    try:
        frontend = lalr.parser
        lexers = frontend.lexer.lexers
        table = frontend.parser.parser.parse_table
        callbacks = frontend.parser.parser.callbacks
        states, state_stack = table.states, [table.start_states["start"]]
        end_state = table.end_states["start"]
    except AttributeError:
        raise Unparsed from None
    scanners: dict[int, tuple] = {}
    value_stack: list = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    last = None
    while True:
        # the next token, as the current state's lexer reads it
        token = None
        while pos < end:
            state = state_stack[-1]
            scanner = scanners.get(state) or _scanner(scanners, lexers, state)
            patterns, retype, newline_types, ignore_types = scanner
            for pattern in patterns:
                found = pattern.match(text, pos)
                if found:
                    break
            else:
                raise Unparsed
            value, kind = found.group(0), found.lastgroup
            start, start_line, column = pos, line, pos - line_start + 1
            if kind in newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if kind in ignore_types and kind not in retype:
                continue
            token = Token(kind, value, start, start_line, column, line, pos - line_start + 1, pos)
            if kind in retype:
                token = retype[kind](token)
            if kind in ignore_types:
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


def _scanner(scanners: dict, lexers: dict, state: int) -> tuple:
    """The state's lexer as the loop reads it: its compiled alternations (built by Lark when first
    used), the callbacks that retype a token (a keyword matched as a name), the terminals that
    may hold a newline and those ignored."""
    lexer = lexers[state]
    try:
        scanner = lexer.scanner
        scanners[state] = found = (scanner._mres, lexer.callback, lexer.newline_types, lexer.ignore_types)
    except AttributeError:
        raise Unparsed from None
    return found
