"""A layer's figures from its parameters and its input shape, each worked out once per check.

A network repeats its layers (the blocks of a stage, a stack of equal convs), so the elaborator
meets the same arguments on the same input many times. `LayerFigures` validates a kind's
arguments once for each set of values, so equal layers share one parameters object, and
`figures` works the layer's output shape, state counts, MACs, window and warnings out once for
each parameters object and input shape: they are pure functions of the two. The receptive field, which also
depends on what came before, is left to each layer.
"""

from __future__ import annotations

from typing import NamedTuple

from cnnspec.layers.base import LayerKind, Params, Shape, StateCounts, Warning_, Window, count_state, per_parameters


class Figures(NamedTuple):
    out: Shape
    counts: StateCounts
    macs: int
    window: Window | None
    notes: tuple[Warning_, ...]


def value_key(value):
    """`value` with the type of every part: `true` and `1`, `1.0` and `1`, `-0.0` and `0.0` are
    equal in Python but not the same argument. Raises TypeError for a value that does not hash."""
    kind = type(value)
    if kind is int or kind is str or kind is bool:
        return kind, value
    if kind is tuple:
        return kind, tuple(value_key(v) for v in value)
    if kind is float:
        return kind, repr(value)
    hash(value)
    return kind, value


class LayerFigures:
    """The parameters of the layers of one check, one object for equal values."""

    def __init__(self):
        self._parameters: dict[tuple, Params] = {}

    def parameters(self, kind: LayerKind, values: dict) -> Params:
        """`kind.Params(**values)`, the same object for equal values; raises pydantic's
        ValidationError as the model does."""
        try:
            key = (kind.name, tuple((name, value_key(value)) for name, value in values.items()))
        except TypeError:
            return kind.Params(**values)
        params = self._parameters.get(key)
        if params is None:
            params = self._parameters[key] = kind.Params(**values)
        return params


@per_parameters
def figures(params: Params, shape: Shape, kind: LayerKind) -> Figures:
    """The figures of a layer of `kind` on an input of `shape`; raises `LayerError` as the kind does."""
    out = kind.infer_shape(params, shape)
    return Figures(out, count_state(kind.state(params, shape)), kind.count_macs(params, shape, out),
                   kind.window(params, shape, out), tuple(kind.warnings(params, shape)))
