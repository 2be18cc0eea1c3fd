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
        if st.binding is not None and st.binding.name == name:
            yield st.binding.span
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
