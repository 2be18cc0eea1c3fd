"""The surface IR: a spec as written, one frozen Pydantic model per construct.

Every node carries the `Span` it was parsed from, so every diagnostic can point into the
source. Nothing here is evaluated: expressions stay expressions, blocks stay definitions.
`cnnspec.analysis.elaborate` turns this into the resolved `cnnspec.graph.Graph`.
This module imports nothing else of the project.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field


class Buildable:
    """A Pydantic model that can also be made unvalidated, from values of the right types."""

    @classmethod
    def built(cls, **fields):
        """The model made of `fields` as they are, unvalidated, as `model_construct` makes it, at a
        fraction of its cost: for the parser and the elaborator, whose values have their types by
        construction (`cnnspec.frontend.build`); building and running Pydantic's validators for a
        parsed tree took as long as parsing it. The fields keep the order declared, the defaults
        filled in."""
        layout = _LAYOUTS.get(cls) or _layout(cls)
        values = layout.defaults.copy()  # in the order declared, which `update` keeps
        values.update(fields)
        if len(values) != len(layout.defaults):
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(values.keys() - layout.names))}")
        return _made(cls, values, layout.names)


class Node(Buildable, BaseModel):
    # defer_build: validators are built on first use, keeping `import cnnspec` fast
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class _Layout(NamedTuple):
    """A model class's fields in the order declared, each with its default (`PydanticUndefined`
    where it has none: the parser gives those), and their names."""

    defaults: dict[str, object]
    names: set[str]


_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type[BaseModel]) -> _Layout:
    fields = cls.model_fields
    layout = _LAYOUTS[cls] = _Layout({name: field.default for name, field in fields.items()}, set(fields))
    return layout


def _slot_setter(name: str):
    """The setter of one of `BaseModel`'s slots, called directly: a frozen model refuses its own
    `__setattr__`, and `object.__setattr__` looks the slot up on every call."""
    slot = BaseModel.__dict__.get(name)
    if type(slot).__name__ == "member_descriptor":
        return slot.__set__
    return lambda model, value: object.__setattr__(model, name, value)


_new = object.__new__
_set_attribute = object.__setattr__
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


def _made(cls, values: dict, names: set[str]):
    """A model of `cls` holding `values` (every field, in the order declared), as Pydantic's
    `model_construct` leaves one. Every field is set: one set of names per class (a copy of the
    model copies it before changing it)."""
    model = _new(cls)
    _set_attribute(model, "__dict__", values)
    _set_fields_set(model, names)
    _set_extra(model, None)
    _set_private(model, None)
    return model


class Span(Node):
    """A region of a source file; lines and columns are 1-based, `end_column` exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def at(file: str, line: int, column: int, end_line: int, end_column: int) -> "Span":
        """`Span.built` of these fields: the parser makes one for every node and kept token."""
        return _made(Span, {"file": file, "line": line, "column": column, "end_line": end_line,
                            "end_column": end_column}, _SPAN_FIELDS)

    def to(self, other: "Span") -> "Span":
        """The span from the start of `self` to the end of `other`."""
        return Span.at(self.file, self.line, self.column, other.end_line, other.end_column)


_SPAN_FIELDS = _layout(Span).names


# ---------------------------------------------------------------- expressions

class Num(Node):
    node: Literal["num"] = "num"
    value: Union[int, float]
    span: Span


class Bool(Node):
    node: Literal["bool"] = "bool"
    value: bool
    span: Span


class Str(Node):
    node: Literal["str"] = "str"
    value: str
    span: Span


class Dims(Node):
    """A literal like `3x3` or `3x224x224`."""

    node: Literal["dims"] = "dims"
    values: tuple[int, ...]
    span: Span


class Ref(Node):
    """A name (`c`, `same`, `global`) or an attribute of the incoming tensor (`in.c`)."""

    node: Literal["ref"] = "ref"
    name: str
    attr: str | None = None
    span: Span


class BinOp(Node):
    node: Literal["binop"] = "binop"
    op: str
    left: "Expr"
    right: "Expr"
    span: Span


class UnaryOp(Node):
    node: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: "Expr"
    span: Span


class Func(Node):
    node: Literal["func"] = "func"
    name: str
    args: tuple["Expr", ...]
    span: Span


class Conditional(Node):
    """`then if condition else otherwise`: only the chosen side is evaluated."""

    node: Literal["conditional"] = "conditional"
    then: "Expr"
    condition: "Expr"
    otherwise: "Expr"
    span: Span


class TupleLit(Node):
    node: Literal["tuple"] = "tuple"
    items: tuple["Expr", ...]
    span: Span


class ListLit(Node):
    node: Literal["list"] = "list"
    items: tuple["Expr", ...]
    span: Span


Expr = Annotated[
    Union[Num, Bool, Str, Dims, Ref, BinOp, UnaryOp, Func, Conditional, TupleLit, ListLit],
    Field(discriminator="node"),
]


class Option(Node):
    """`key=value` on a layer or a block call."""

    key: str
    value: Expr
    span: Span


# ---------------------------------------------------------------- items

class Layer(Node):
    """`conv 64 3x3 stride=2`: a layer kind with positional arguments and options."""

    node: Literal["layer"] = "layer"
    kind: str
    args: tuple[Expr, ...] = ()
    options: tuple[Option, ...] = ()
    span: Span
    kind_span: Span


class Call(Node):
    """`basic(128, stride=2)`: a block call (or a layer written with parentheses)."""

    node: Literal["call"] = "call"
    name: str
    args: tuple[Expr, ...] = ()
    options: tuple[Option, ...] = ()
    span: Span
    name_span: Span
    #: `*block(...)`: the block's items join the enclosing scope instead of forming a submodule
    splice: bool = False


class Group(Node):
    """`{ ... }`: a sequence of statements."""

    node: Literal["group"] = "group"
    body: tuple["Statement", ...]
    span: Span


class Shortcut(Node):
    label: str | None = None
    label_span: Span | None = None
    condition: Expr | None = None
    body: Group
    span: Span


class Residual(Node):
    """`residual { main } shortcut { projection }`: main(x) + shortcut(x)."""

    node: Literal["residual"] = "residual"
    main: Group
    shortcut: Shortcut | None = None
    span: Span


class Concat(Node):
    """`concat [crop] { branch; branch }`: branches joined along channels."""

    node: Literal["concat"] = "concat"
    flags: tuple[str, ...] = ()
    body: Group
    span: Span


class Add(Node):
    """`add { branch; branch }`: branches summed, broadcasting."""

    node: Literal["add"] = "add"
    body: Group
    span: Span


class Scale(Node):
    """`scale { branch }`: the input multiplied by the branch's output, broadcasting."""

    node: Literal["scale"] = "scale"
    body: Group
    span: Span


class When(Node):
    """`when (cond) { ... } else { ... }`: chosen when the block is expanded."""

    node: Literal["when"] = "when"
    condition: Expr
    then: Group
    otherwise: Group | None = None
    span: Span


class ValueName(Node):
    """A named value where it is read: an operand of `add(a, b)`, or a statement's `a ->`."""

    name: str
    span: Span


class ValueMerge(Node):
    """`add(a, b)`, `scale(x, gate)`, `concat [crop] (a, b)`: named values joined, the incoming
    tensor unused. `add(hi, lo -> conv 8 1x1)`: an operand may be a chain from its value, the
    statement `lo -> conv 8 1x1` in `chains` at the operand's index (None for a value read as it
    is; no `chains` at all where every operand is one)."""

    node: Literal["value_merge"] = "value_merge"
    op: Literal["add", "scale", "concat"]
    flags: tuple[str, ...] = ()
    operands: tuple[ValueName, ...]
    chains: tuple[ItemStatement | None, ...] = ()
    span: Span


class Use(Node):
    """`use encoder`: the labelled module `label` (its state_dict path below the current scope)
    applied again to the tensor flowing in, sharing its parameters."""

    node: Literal["use"] = "use"
    label: str
    label_span: Span
    #: `use exchange(h2, lo=l2)`: the values a labelled call of a block over values is applied to
    #: again, each for the value parameter named in `keys` (None: the next by position)
    values: tuple[ValueName, ...] = ()
    keys: tuple[str | None, ...] = ()
    span: Span


class Repeat(Node):
    """`item * n`."""

    node: Literal["repeat"] = "repeat"
    item: "Item"
    count: Expr
    span: Span


Item = Annotated[
    Union[Layer, Call, Group, Residual, Concat, Add, Scale, When, ValueMerge, Use, Repeat],
    Field(discriminator="node"),
]


# ---------------------------------------------------------------- statements

class ItemStatement(Node):
    """`value = source -> label: a, b * 2`: a chain of items, optionally labelled, applied to the
    named value `source` (else to the tensor flowing in) and its output bound to `value`."""

    node: Literal["items"] = "items"
    label: str | None = None
    label_span: Span | None = None
    binding: ValueName | None = None
    #: `(h, l) = fuse(...)`: the names the values a block returns are bound to, in its order
    bindings: tuple[ValueName, ...] = ()
    source: ValueName | None = None
    chain: tuple[Item, ...]
    span: Span


class NetworkDecl(Node):
    node: Literal["network"] = "network"
    name: str
    span: Span


class InputDecl(Node):
    node: Literal["input"] = "input"
    name: str
    dims: tuple[int, ...]
    span: Span
    dims_span: Span
    #: the input's name, where an editor renames it
    name_span: Span | None = None


class OutputDecl(Node):
    """`output p2, p3`: the named values the network returns, in this order."""

    node: Literal["output"] = "output"
    names: tuple[ValueName, ...]
    #: the name each value is returned under, where written (`"0"=p2`: `0`); none: the values' own
    keys: tuple[str | None, ...] = ()
    span: Span

    def returned(self) -> tuple[str, ...]:
        """The name each output is returned under, in order."""
        keys = self.keys or (None,) * len(self.names)
        return tuple(key if key is not None else name.name for key, name in zip(keys, self.names))


class BlockParam(Node):
    name: str
    default: Expr | None = None
    span: Span


class BlockDef(Node):
    node: Literal["block"] = "block"
    name: str
    params: tuple[BlockParam, ...] = ()
    #: `-> (h2, l2)`: the values of its body the block returns, in order; none: what flows out
    returns: tuple[ValueName, ...] = ()
    body: Group
    span: Span
    name_span: Span


class Import(Node):
    node: Literal["import"] = "import"
    path: str
    span: Span


class ExpectShape(Node):
    node: Literal["expect_shape"] = "expect_shape"
    metric: str
    dims: tuple[int, ...]
    span: Span


class ExpectMetric(Node):
    """`expect params < 5M`: a bound on a total."""

    node: Literal["expect_metric"] = "expect_metric"
    metric: str
    op: str
    value: float
    text: str
    span: Span


Statement = Annotated[
    Union[ItemStatement, NetworkDecl, InputDecl, OutputDecl, BlockDef, Import, ExpectShape, ExpectMetric],
    Field(discriminator="node"),
]


class SpecFile(Node):
    """One parsed `.cnn` file."""

    path: str
    statements: tuple[Statement, ...]

