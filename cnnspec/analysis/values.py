"""The named values a module can read while it is elaborated.

A module is the file's top level, one block call or one labelled group: what becomes one
PyTorch module whose `forward` computes them. A value is readable from its binding to the end of
its module, in every unlabelled group, `when` arm and merge branch inside it (they splice, as
they do for labels), and nowhere else: a labelled group or a called block is a module of its
own and sees only its input. A block spread with `*` joins its caller's module but still cannot
read the caller's values (a block's body names only what it binds).

Each value has a key unique in the whole graph, `scope:name` (`layer1.0:a`, `:c2` at the top
level), with `#n` for the n-th value of one name in one module (shadowing), so the backends can
keep every value of the network in one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnspec import ir


@dataclass
class Value:
    name: str
    key: str
    #: the `Flow` (shape and receptive field) the value was bound with
    flow: Any
    #: the binding's name, or the input declaration's
    span: ir.Span
    used: bool = False
    is_input: bool = False


@dataclass
class Values:
    """One module's values, bound so far, by name."""

    prefix: str = ""
    #: the module's statements (a labelled group's items), searched for a binding below a use
    #: only when a use fails
    statements: tuple = ()
    #: the module this one is elaborated inside, named in the help of a failed use
    outer: "Values | None" = None
    bound: dict[str, Value] = field(default_factory=dict)
    #: values bound per name in this PyTorch module: shared with a block spread into it
    counts: dict[str, int] = field(default_factory=dict)
    #: the network's inputs by name (at the top level only), even once a binding hides one
    bound_inputs: dict[str, Value] = field(default_factory=dict)

    def module(self, prefix: str, statements=()) -> "Values":
        """A module elaborated inside this one (a labelled group or a block call)."""
        return Values(prefix, tuple(statements), outer=self)

    def spread(self, statements) -> "Values":
        """The values of a block spread with `*` into this module: keys counted with its own."""
        return Values(self.prefix, tuple(statements), outer=self, counts=self.counts)

    def new_key(self, name: str) -> str:
        count = self.counts.get(name, 0) + 1
        self.counts[name] = count
        return f"{self.prefix}:{name}" + (f"#{count}" if count > 1 else "")

    def bound_later(self, name: str, after: ir.Span) -> ir.Span | None:
        """Where this module binds `name` below `after`, if it does."""
        for span in bindings(self.statements, name):
            if (span.line, span.column) > (after.line, after.column):
                return span
        return None


def bindings(statements, name: str):
    """The spans of the bindings of `name` among `statements` (or items) and the groups they
    open, in their module (not inside labelled chains, which are modules of their own)."""
    for st in statements:
        if st.node != "items":
            yield from _item_bindings(st, name)
            continue
        for binding in (st.binding,) if st.binding is not None else st.bindings:
            if binding.name == name:
                yield binding.span
        if st.label is None:
            for item in st.chain:
                yield from _item_bindings(item, name)


def _item_bindings(item, name: str):
    node = item.node
    if node == "repeat":
        yield from _item_bindings(item.item, name)
    elif node == "group":
        yield from bindings(item.body, name)
    elif node == "when":
        yield from bindings(item.then.body, name)
        if item.otherwise is not None:
            yield from bindings(item.otherwise.body, name)
    elif node == "residual":
        yield from bindings(item.main.body, name)
        if item.shortcut is not None and item.shortcut.label is None:
            yield from bindings(item.shortcut.body.body, name)
    elif node in ("concat", "add", "scale"):
        yield from bindings(item.body.body, name)
    elif node == "value_merge":
        yield from bindings([chain for chain in item.chains if chain is not None], name)


@dataclass(frozen=True)
class ValueMention:
    """One place a spec writes a value's name: where it is bound (`binding`), or read with the
    binding it reads (`bound_at`: the binding's span, an input declaration's for an input, None
    for a read nothing binds above it)."""

    name: str
    span: ir.Span
    bound_at: ir.Span | None
    binding: bool = False


def value_mentions(spec: ir.SpecFile, blocks=()) -> list[ValueMention]:
    """Every binding and read of a named value in the spec's text and in `blocks`' bodies, each
    read paired with the binding it reads by the rule above: a module's bindings so far, its
    unlabelled groups, `when` arms and branches spliced in, a labelled group or a block body a
    module of its own. Read from the parse alone, so an editor can follow values in a spec that
    does not check."""
    found: list[ValueMention] = []
    inputs = {s.name: s.name_span or s.span for s in spec.statements if s.node == "input"}
    found += [ValueMention(name, span, span, binding=True) for name, span in inputs.items()]
    _module(spec.statements, dict(inputs), found)
    for block in blocks:
        found += _block_mentions(block)
    return found


def _block_mentions(block) -> list[ValueMention]:
    """A block body's mentions; a value parameter is bound where it is declared."""
    inner: list[ValueMention] = []
    _module(block.body.body, {}, inner)
    params = {p.name: p.span for p in block.params}
    read = _read_unbound(inner, params)
    declared = [ValueMention(name, params[name], params[name], binding=True) for name in params if name in read]
    bound = {m.name: m.span for m in inner if m.binding}
    # `-> (h2, l2)` reads what the body binds last under each name
    returned = [ValueMention(r.name, r.span, bound.get(r.name)) for r in block.returns]
    return declared + [m if m.bound_at is not None or m.name not in read else
                       ValueMention(m.name, m.span, params[m.name]) for m in inner] + returned


def value_parameters(block) -> frozenset[str]:
    """The parameters of `block` its body reads as values, where nothing in the body binds them above
    the read: the value parameters, which a call passes values."""
    inner: list[ValueMention] = []
    _module(block.body.body, {}, inner)
    return _read_unbound(inner, {p.name for p in block.params})


def _read_unbound(mentions, params) -> frozenset[str]:
    return frozenset(m.name for m in mentions if m.bound_at is None and m.name in params)


def _module(statements, bound: dict[str, ir.Span], found: list[ValueMention]) -> None:
    for st in statements:
        _statement(st, bound, found)


def _read(name: ir.ValueName, bound: dict[str, ir.Span], found: list[ValueMention]) -> None:
    found.append(ValueMention(name.name, name.span, bound.get(name.name)))


def _statement(st, bound: dict[str, ir.Span], found: list[ValueMention]) -> None:
    node = st.node
    if node == "output":
        for name in st.names:
            _read(name, bound, found)
    elif node == "expect_shape" and st.metric in bound:
        start = st.span.column + len("expect ")
        span = st.span.model_copy(update={"column": start, "end_line": st.span.line, "end_column": start + len(st.metric)})
        found.append(ValueMention(st.metric, span, bound[st.metric]))
    elif node == "items":
        if st.source is not None:
            _read(st.source, bound, found)
        # a labelled chain is a module of its own, but a labelled layer or call reads where it stands
        alone = len(st.chain) == 1 and st.chain[0].node in ("layer", "call")
        inner = bound if st.label is None or alone else {}
        for item in st.chain:
            _item(item, inner, found)
        for binding in (st.binding,) if st.binding is not None else st.bindings:
            bound[binding.name] = binding.span
            found.append(ValueMention(binding.name, binding.span, binding.span, binding=True))
    else:
        _item(st, bound, found)


def _item(item, bound: dict[str, ir.Span], found: list[ValueMention]) -> None:
    node = item.node
    if node == "repeat":
        _item(item.item, bound, found)
    elif node == "group":
        _module(item.body, bound, found)
    elif node == "when":
        _module(item.then.body, bound, found)
        if item.otherwise is not None:
            _module(item.otherwise.body, bound, found)
    elif node == "residual":
        _module(item.main.body, bound, found)
        if item.shortcut is not None:
            _module(item.shortcut.body.body, bound if item.shortcut.label is None else {}, found)
    elif node in ("concat", "add", "scale"):
        _module(item.body.body, bound, found)
    elif node == "value_merge":
        for name, chain in zip(item.operands, item.chains or (None,) * len(item.operands)):
            _read(name, bound, found)
            # `add(hi, lo -> conv 8 1x1, upsample size=hi)`: what the chain from an operand reads
            for inner in chain.chain if chain is not None else ():
                _item(inner, bound, found)
    elif node == "use":
        # `use exchange(h2, l2)`: the values a call over values is applied to again
        for name in item.values:
            _read(name, bound, found)
    elif node in ("layer", "call"):
        # an option naming a bound value reads it (`upsample size=c1`), as does a block call's
        # argument (`fuse(8, a, b)`); any other name is a block parameter or unknown, which the
        # checker reports
        for ref in (*item.args, *(o.value for o in item.options)) if node == "call" else (o.value for o in item.options):
            if ref.node == "ref" and ref.attr is None and ref.name in bound:
                found.append(ValueMention(ref.name, ref.span, bound[ref.name]))
