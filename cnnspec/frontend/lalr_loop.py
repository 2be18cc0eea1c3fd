"""Lark's LALR parse of a text, run by one loop of its own, from tables kept as plain data.

Lark reads a token through a generator, a lexer object per parser state and a line counter,
and feeds it to the parser through a method call; that handling, per token, took a quarter
of a 10,000-layer spec's parse. `parse` does what `Lark.parse` does for the contextual lexer
(each state's own terminals, keywords retyped by the lexer's callbacks, ignored terminals
skipped, then shifts and reductions with the rules' callbacks, which build the IR) in one
loop over Lark's tables, so its result is Lark's. It handles valid texts only: at anything
else (a character no terminal matches, a token the state does not take) it raises `Unparsed`,
and Lark's own parse of the text is what reports the error (`tests/test_spans.py` holds the two
parses to the same results).

The tables (`Tables`) are read off a Lark parser once and kept as plain data: making a Lark
parser, even from its cache, rebuilds its grammar, its parse table and a lexer per state, about
a twentieth of a whole check of ResNet-50, while the tables load from a file in a fraction of
that (`cnnspec.frontend.parser` keeps them). Lark itself is made only for a text that does not
parse.

Each state's lexer is an alternation of its terminals, compiled when the state is first met:
ResNet-50's parse meets 42, whose compiling took longer than its parse. Most states read with
the root lexer's one alternation instead (`Reading.shared`), which gives the state's token
wherever its token is one the state takes; elsewhere the state's own alternation reads it.
"""

from __future__ import annotations

import re

from lark import Lark, Token

#: bumped whenever what `Tables.data` holds changes, so tables kept by an older version are read
#: off Lark again
FORMAT = 1

#: a token made as `Token(...)` makes it, less its handling of a deprecated keyword argument (half
#: its cost, once per token)
_token = getattr(Token, "_future_new", Token)


class Unparsed(Exception):
    """The loop met what Lark's own parse must handle: a syntax error, or unknown internals."""


class Tables:
    """What the loop reads of a Lark LALR parser with a contextual lexer, as plain data (`data`).

    `states`: each parser state's actions, `{symbol: (True, next state)}` for a shift and
    `{symbol: (False, rule number)}` for a reduction (a goto is a shift of a rule's name).
    `rules`: each rule as `(origin, ((is a terminal, name, filtered out), ...), order, alias,
    (keep_all_tokens, expand1, priority, template_source, empty_indices))`, from which Lark's
    `ParseTreeBuilder` makes its callbacks. `lexers`: each distinct state lexer as
    `(terminal names, shared, newline types, ignore types, alternations, keywords)`, where an
    alternation is `(pattern, flags)` and `keywords` maps a terminal to the keywords read as it,
    `{text: keyword}`; `state_lexers`: each state's lexer, by number. `root`: the alternations and
    keywords of the lexer of every terminal."""

    __slots__ = ("start", "end", "states", "rules", "terminals", "options", "root", "lexers", "state_lexers")

    def __init__(self, data: dict):
        try:
            if data["format"] != FORMAT:
                raise Unparsed
            for name in self.__slots__:
                setattr(self, name, data[name])
        except (KeyError, TypeError):
            raise Unparsed from None

    def data(self) -> dict:
        """The tables as dicts, tuples, strings, numbers and booleans (what `marshal` writes)."""
        return {"format": FORMAT, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def read_off(cls, lalr: Lark) -> "Tables":
        """The tables of a Lark parser (`Unparsed` if its internals are not the ones read here).
        Compiles every state's lexer: done once, where the tables are made to be kept."""
        try:
            return cls(_read_off(lalr))
        except AttributeError:
            raise Unparsed from None


def _read_off(lalr: Lark) -> dict:
    from lark.lexer import PatternStr, UnlessCallback
    from lark.parsers.lalr_analysis import Shift

    options = lalr.options
    if options.postlex is not None or options.lexer_callbacks or options.tree_class is not None:
        raise Unparsed
    frontend = lalr.parser
    table = frontend.parser.parser.parse_table
    rules = list(lalr.rules)
    number = {rule: i for i, rule in enumerate(rules)}
    # names as plain strings: a parser built from the grammar, not its cache, names with Lark's tokens
    states = {state: {str(symbol): (True, argument) if action is Shift else (False, number[argument])
                      for symbol, (action, argument) in actions.items()}
              for state, actions in table.states.items()}

    def alternations(scanner) -> tuple:
        return tuple((str(mre.pattern), mre.flags) for mre in scanner._mres)

    def keywords(lexer) -> dict:
        """Each terminal's keywords, where the lexer retypes a token read as the terminal."""
        if lexer.user_callbacks:
            raise Unparsed
        kept = {}
        for name, callback in lexer.callback.items():
            terminals = callback.scanner.terminals if isinstance(callback, UnlessCallback) else None
            # a keyword is a string matched whole: a dict finds it as the callback's scanner does
            if terminals is None or any(not isinstance(t.pattern, PatternStr) or t.pattern.flags for t in terminals):
                raise Unparsed
            found: dict[str, str] = {}
            for keyword in terminals:
                found.setdefault(str(keyword.pattern.value), str(keyword.name))
            kept[str(name)] = found
        return kept

    root_lexer = frontend.lexer.root_lexer
    root_scanner = root_lexer.scanner
    root_names = {str(t.name) for t in root_scanner.terminals}
    root_keywords = keywords(root_lexer)
    #: each keyword the root reads as another terminal (`conv` as a name), by those terminals
    embedders: dict[str, set[str]] = {}
    for name, found in root_keywords.items():
        for keyword in set(found.values()) - root_names:
            embedders.setdefault(keyword, set()).add(name)

    lexers, numbered, state_lexers = [], {}, {}
    for state, lexer in frontend.lexer.lexers.items():
        if id(lexer) not in numbered:
            names = frozenset(str(t.name) for t in lexer.terminals)
            numbered[id(lexer)] = len(lexers)
            lexers.append((names, _shared(names, root_names, embedders), tuple(map(str, lexer.newline_types)),
                           tuple(map(str, lexer.ignore_types)), alternations(lexer.scanner), keywords(lexer)))
        state_lexers[state] = numbered[id(lexer)]
    return {
        "format": FORMAT,
        "start": table.start_states["start"],
        "end": table.end_states["start"],
        "states": states,
        "rules": tuple((str(rule.origin.name), tuple((symbol.is_term, str(symbol.name), getattr(symbol, "filter_out", False))
                                                      for symbol in rule.expansion), rule.order,
                        None if rule.alias is None else str(rule.alias),
                        (rule.options.keep_all_tokens, rule.options.expand1, rule.options.priority,
                         rule.options.template_source, tuple(rule.options.empty_indices)))
                       for rule in rules),
        "terminals": tuple(str(t.name) for t in lalr.terminals),
        "options": (bool(options.propagate_positions), bool(options.maybe_placeholders)),
        "root": (alternations(root_scanner), root_keywords),
        "lexers": tuple(lexers),
        "state_lexers": state_lexers,
    }


def _shared(names: frozenset, root_names: set, embedders: dict) -> bool:
    """Whether a state reads with the root lexer. Both alternations order their terminals alike
    (by priority, width, length and name), so a terminal the root finds first that the state has
    is the first of the state's that matches; a name the root reads as a keyword is one to the
    state too, when the state has the keyword. That holds where the state's terminals, less the
    keywords it reads as names, are among the root's: a state holding a keyword but not the
    terminal the root reads it as (a `conv` without names) matches the keyword where the root
    matches a longer name, and reads alone."""
    return all(name in root_names or embedders.get(name, set()) & names for name in names)


class Reading:
    """How the loop reads a state's next token: its terminals' `names`, whether it reads with the
    root lexer (`shared`), and its own alternations, compiled on first use."""

    __slots__ = ("names", "shared", "newline_types", "ignore_types", "keywords", "_sources", "_own")

    def __init__(self, lexer: tuple):
        names, self.shared, newline_types, ignore_types, self._sources, self.keywords = lexer
        self.names, self.newline_types, self.ignore_types = frozenset(names), frozenset(newline_types), frozenset(ignore_types)
        self._own = None

    def own_patterns(self) -> list:
        if self._own is None:
            self._own = [re.compile(pattern, flags) for pattern, flags in self._sources]
        return self._own


class Loop:
    """The tables made ready for one transformer: the tokens' callbacks, and each state's actions
    (with the callbacks of the rules it reduces) and reading, made on the state's first use.

    `rows`: each state's actions by token or rule name, a shift as `(state, None, the token's
    callback, None)`, a reduction as `(None, the rule's length, its callback, the rule's name)`,
    so no step hashes a rule, and a goto as the first. A rule of one symbol written `?rule` has
    no callback: its value is its child's, left on the stack."""

    def __init__(self, tables: Tables, transformer):
        self.tables = tables
        self.start, self.end = tables.start, tables.end
        root_alternations, self.root_keywords = tables.root
        self.root_patterns = [re.compile(pattern, flags) for pattern, flags in root_alternations]
        self.transformer = transformer
        self.token_callbacks = {name: getattr(transformer, name) for name in tables.terminals
                                if getattr(transformer, name, None) is not None}
        self.readings: dict[int, Reading] = {}
        self.rows: dict[int, dict[str, tuple]] = {}
        self._rule_callbacks: dict[int, object] = {}
        self._lexer_readings: dict[int, Reading] = {}

    def reading(self, state: int) -> Reading:
        try:
            number = self.tables.state_lexers[state]
        except KeyError:
            raise Unparsed from None
        found = self._lexer_readings.get(number)
        if found is None:
            found = self._lexer_readings[number] = Reading(self.tables.lexers[number])
        self.readings[state] = found
        return found

    def row(self, state: int) -> dict[str, tuple]:
        from lark.parse_tree_builder import ExpandSingleChild

        rules, row = self.tables.rules, {}
        try:
            actions = self.tables.states[state]
        except KeyError:
            raise Unparsed from None
        for symbol, (shift, argument) in actions.items():
            if shift:
                row[symbol] = (argument, None, self.token_callbacks.get(symbol), None)
            else:
                rule = rules[argument]
                callback = self._rule_callbacks.get(argument)
                if callback is None:
                    callback = self._rule_callbacks[argument] = _rule_callback(rule, *self.tables.options, self.transformer)
                size = len(rule[1])
                if size == 1 and type(callback) is ExpandSingleChild:
                    callback = None  # it returns its one child as it is
                row[symbol] = (None, size, callback, rule[0])
        self.rows[state] = row
        return row


def _rule_callback(rule: tuple, propagate_positions: bool, maybe_placeholders: bool, transformer):
    """A rule's callback, as Lark makes it for the transformer: by its own `ParseTreeBuilder`, from
    the rule made again. Each rule's callback is made apart from the others' (a parse meets a
    third of them)."""
    from lark.grammar import NonTerminal, Rule, RuleOptions, Terminal
    from lark.parse_tree_builder import ParseTreeBuilder
    from lark.tree import Tree

    origin, expansion, order, alias, (keep_all_tokens, expand1, priority, template_source, empty_indices) = rule
    made = Rule(NonTerminal(origin),
                [Terminal(name, filter_out) if is_term else NonTerminal(name) for is_term, name, filter_out in expansion],
                order, alias, RuleOptions(keep_all_tokens, expand1, priority, template_source, empty_indices))
    return ParseTreeBuilder([made], Tree, propagate_positions, False, maybe_placeholders).create_callback(transformer)[made]


def parse(loop: Loop, text: str):
    """What Lark's parse of `text` returns, for a text that parses; else `Unparsed`."""
    root_patterns, root_keywords = loop.root_patterns, loop.root_keywords
    readings, rows = loop.readings, loop.rows
    state_stack = [loop.start]
    end_state = loop.end
    value_stack: list = []
    pos, line, line_start, end = 0, 1, 0, len(text)
    last = None
    while True:
        # the next token, as the current state's lexer reads it
        token = None
        while pos < end:
            state = state_stack[-1]
            reading = readings.get(state) or loop.reading(state)
            kind = None
            if reading.shared:
                for pattern in root_patterns:
                    found = pattern.match(text, pos)
                    if found:
                        kind = found.lastgroup
                        keywords = root_keywords.get(kind)
                        if keywords is not None:
                            kind = keywords.get(found.group(0), kind)
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
                keywords = reading.keywords.get(kind)
                if keywords is not None:
                    kind = keywords.get(found.group(0), kind)
            value = found.group(0)
            start, start_line, column = pos, line, pos - line_start + 1
            if kind in reading.newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if kind in reading.ignore_types:
                continue
            token = _token(kind, value, start, start_line, column, line, pos - line_start + 1, pos)
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
                target, size, callback, origin = (rows.get(top) or loop.row(top))[kind]
            except KeyError:
                raise Unparsed from None
            if size is None:  # a shift
                state_stack.append(target)
                value_stack.append(token if callback is None else callback(token))
                break
            if callback is None:  # a rule of one symbol that passes its value on (`?rule`)
                below = state_stack[-2]
                state = state_stack[-1] = (rows.get(below) or loop.row(below))[origin][0]
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
            state = (rows.get(state_stack[-1]) or loop.row(state_stack[-1]))[origin][0]
            state_stack.append(state)
            value_stack.append(value)
            if at_end and state == end_state:
                return value
