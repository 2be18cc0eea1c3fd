"""Limits: the bounds that refuse a spec before anything large is built, and where they refuse it.

The layers are counted ahead of the expansion (`LayerBound`), so a spec that would expand to
10^12 layers is refused (E124) at the item that crosses `max_layers` as fast as a small one;
parameters (E301) and the elements of one activation (E302) are refused at the first layer
over them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnspec import ir
from cnnspec.analysis.context import Env, Reporting, keyword_span
from cnnspec.analysis.expansion import CAP, LayerBound
from cnnspec.codes import Code
from cnnspec.frontend.parser import LAYER_LIMIT_HELP, LAYER_LIMIT_MESSAGE, MAX_TOKENS
from cnnspec.layers.base import describe_shape
from cnnspec.layers.formulas import product


@dataclass(frozen=True)
class Limits:
    """Bounds that refuse a spec before anything is built: `[tool.cnnspec.limits]` sets them.

    The zoo's largest network has 822 layers in 701 tokens; a spec at these limits checks in a
    few seconds and a few hundred MB, and one beyond them is refused within about a second.
    """

    max_params: int = 10 ** 11
    max_activation: int = 10 ** 11
    #: layers after blocks and repeats are expanded, counted ahead of the expansion (E124)
    max_layers: int = 20_000
    max_repeat: int = 10_000
    max_call_depth: int = 64
    #: tokens of one source file, counted before it is parsed (E012)
    max_tokens: int = MAX_TOKENS


class Abort(Exception):
    """Stop elaborating: the spec expands beyond the limits."""


def layers_text(layers: int) -> str:
    """A count of layers, saturated as `LayerBound` saturates it."""
    return f"over {CAP:,} layers" if layers >= CAP else f"{layers:,} layer{'s' if layers != 1 else ''}"


def name_span_text(item) -> str:
    return item.kind if item.node == "layer" else item.name


class LayerLimits(Reporting):
    """The elaborator's limits: `layer_count` layers built so far, each refusal made once."""

    limits: Limits
    bound: LayerBound
    blocks: dict[str, ir.BlockDef]
    layer_count: int
    params_refused: bool
    activation_refused: bool

    def check_layer_budget(self, statements, env: Env) -> None:
        """Before anything is built: refuse (E124) at the item where the layers counted ahead
        (`LayerBound`) cross `max_layers`, so a spec of 10^12 layers is refused as fast as one of 10."""
        found = self.crossing(statements, env, 0)
        if found is not None:
            self.too_many_layers(*found)

    def crossing(self, statements, env: Env, before: int) -> tuple[ir.Span, str, int] | None:
        """The item at which `before` plus the statements' layers cross the limit: its span, a
        label saying what it adds, and the layers before it. Structures written in place (groups,
        a `when` already decided, merges) are looked into; a call or a repeat is where its
        layers come from."""
        limit = self.limits.max_layers
        for st in statements:
            layers = self.bound.statement(st, env.names, env.in_shape)
            if before + layers <= limit:
                before += layers
                continue
            if st.label is not None and st.label.endswith("}"):
                return st.span, f"{layers_text(layers)} in these copies", before
            for item in st.chain:
                layers = self.bound.item(item, env.names, env.in_shape)
                if before + layers <= limit:
                    before += layers
                    continue
                parts = self.bound.parts(item, env.names, env.in_shape) if item.node not in (
                    "layer", "call", "repeat") else None
                for part in parts or ():
                    found = self.crossing(part, env, before)
                    if found is not None:
                        return found
                    before += self.bound.statements(part, env.names, env.in_shape)
                return (*self.adds(item, layers, env), before)
        return None

    def adds(self, item, layers: int, env: Env) -> tuple[ir.Span, str]:
        """Where an item that crosses the layer limit is written, and what it adds."""
        if item.node == "repeat":
            count = self.bound.count(item.count, env.names, env.in_shape)
            inner = self.bound.item(item.item, env.names, env.in_shape)
            return item.span, f"{count:,} copies of {layers_text(inner)}"
        if item.node in ("layer", "call") and (item.kind if item.node == "layer" else item.name) in self.blocks:
            name_span = item.kind_span if item.node == "layer" else item.name_span
            return name_span, f"`{name_span_text(item)}` expands to {layers_text(layers)}"
        if item.node in ("layer", "call"):
            return item.span, "the limit is crossed here"
        return keyword_span(item.span, item.node), f"expands to {layers_text(layers)}"

    def check_copies(self, item, count: int, span: ir.Span, env: Env) -> None:
        """A repeat about to be expanded: refused (E124) if its copies surely cross the limit (inside
        a block, where the count ahead could not know `in` or the arguments)."""
        inner = self.bound.item(item, env.names, env.in_shape)
        if self.layer_count + count * inner > self.limits.max_layers:
            self.too_many_layers(span, f"{count:,} copies of {layers_text(inner)}", self.layer_count)

    def too_many_layers(self, span: ir.Span, label: str, before: int) -> None:
        notes = (f"{layers_text(before)} before it",) if before else ()
        self.error(Code.TOO_MANY_LAYERS, LAYER_LIMIT_MESSAGE.format(self.limits.max_layers), span, label=label, notes=notes,
                   help=LAYER_LIMIT_HELP)
        raise Abort()

    def check_params(self, total: int, layer: int, span: ir.Span) -> None:
        """E301 once, at the first layer that takes the network's parameters over the limit."""
        if total > self.limits.max_params and not self.params_refused:
            self.params_refused = True
            self.error(Code.TOO_MANY_PARAMS, f"the network reaches {total:,} parameters, over the limit of {self.limits.max_params:,}",
                       span, label=f"this layer alone has {layer:,}",
                       help="a dense layer over a large input explodes: pool or stride down before it")

    def check_activation(self, shape, span: ir.Span) -> None:
        elements = product(shape)
        if elements > self.limits.max_activation and not self.activation_refused:
            self.activation_refused = True
            self.error(Code.ACTIVATION_TOO_LARGE, f"an activation of {describe_shape(shape)} holds {elements:.3g} elements, over the "
                               f"limit of {self.limits.max_activation:.3g}", span,
                       help="downsample earlier, or check the input size")
