"""Activations and dropout: elementwise, no parameters, shape unchanged."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cnnspec.layers.base import Constant, Everything, LayerKind, Params, Shape, Taps, Tensor, Traits, register
from cnnspec.layers.domains import values

#: an elementwise nonlinearity
ACTIVATION = Traits(pointwise=True, activation=True)


def _simple(kind_name: str, text: str, family: str = "activation", pytorch_names: dict[str, str | None] | None = None):
    """Register a parameterless elementwise activation."""
    params = type(f"{kind_name.title().replace('_', '')}Params", (Params,),
                  {"__annotations__": {"kind": Literal[kind_name]}, "kind": kind_name})
    kind = type(kind_name.title().replace("_", ""), (LayerKind,),
                {"name": kind_name, "family": family, "Params": params, "summary": text, "traits": ACTIVATION,
                 "field": "pointwise", "pytorch_names": pytorch_names or {}})
    register(kind)
    return params


ReluParams = _simple("relu", "max(0, x)")
Relu6Params = _simple("relu6", "min(max(0, x), 6)")
SiluParams = _simple("silu", "x * sigmoid(x), also called swish", pytorch_names={"swish": None})
HardswishParams = _simple("hardswish", "x * relu6(x + 3) / 6")
HardsigmoidParams = _simple("hardsigmoid", "relu6(x + 3) / 6")
SigmoidParams = _simple("sigmoid", "1 / (1 + exp(-x))")
TanhParams = _simple("tanh", "hyperbolic tangent")


class LeakyReluParams(Params):
    kind: Literal["leaky_relu"] = "leaky_relu"
    slope: float = 0.01


@register
class LeakyRelu(LayerKind):
    name = "leaky_relu"
    family = "activation"
    Params = LeakyReluParams
    positional = ("slope",)
    summary = "x if x > 0 else slope * x"
    traits = ACTIVATION
    field = "pointwise"
    ranges = {"slope": values(0.01, 0.2, -0.1)}


class EluParams(Params):
    kind: Literal["elu"] = "elu"
    alpha: float = 1.0


@register
class Elu(LayerKind):
    name = "elu"
    family = "activation"
    Params = EluParams
    positional = ("alpha",)
    summary = "x if x > 0 else alpha * (exp(x) - 1)"
    traits = ACTIVATION
    field = "pointwise"
    ranges = {"alpha": values(1.0, 0.5)}


class GeluParams(Params):
    kind: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = "none"


@register
class Gelu(LayerKind):
    name = "gelu"
    family = "activation"
    Params = GeluParams
    summary = "x * Phi(x), exact or with the tanh approximation"
    traits = ACTIVATION
    field = "pointwise"
    ranges = {"approximate": values("none", "tanh")}


class SoftmaxParams(Params):
    kind: Literal["softmax"] = "softmax"


@register
class Softmax(LayerKind):
    name = "softmax"
    family = "activation"
    Params = SoftmaxParams
    summary = "softmax over the channels (the features of a flat vector)"
    traits = Traits(pointwise=True, activation=True, probabilities=True)
    field = "reads"

    def feature_reads(self, p: SoftmaxParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {0: Everything()}


Probability = Annotated[float, Field(ge=0, lt=1)]


class DropoutParams(Params):
    kind: Literal["dropout"] = "dropout"
    p: Probability = 0.5


@register
class Dropout(LayerKind):
    name = "dropout"
    family = "regularisation"
    Params = DropoutParams
    positional = ("p",)
    summary = "zeroes elements with probability p in training; identity at inference"
    traits = Traits(pointwise=True, dropout=True)
    field = "pointwise"
    ranges = {"p": values(0.0, 0.1, 0.5)}
    training_only = ("p",)

    def brief(self, p, rank: int) -> list[str]:
        return [f"{p.p:g}"]


class Dropout2dParams(Params):
    kind: Literal["dropout2d"] = "dropout2d"
    p: Probability = 0.5


@register
class Dropout2d(Dropout):
    name = "dropout2d"
    Params = Dropout2dParams
    summary = "zeroes whole channels with probability p in training; identity at inference"


class MulParams(Params):
    kind: Literal["mul"] = "mul"
    factor: float


@register
class Mul(LayerKind):
    name = "mul"
    family = "activation"
    Params = MulParams
    positional = ("factor",)
    summary = "multiply by a constant (Inception-ResNet's residual scaling)"
    traits = Traits(pointwise=True)
    field = "pointwise"
    ranges = {"factor": values(0.17, 2.0, -1.5, 1.0)}

    def brief(self, p: MulParams, rank: int) -> list[str]:
        return [f"{p.factor:g}"]


class LayerScaleParams(Params):
    kind: Literal["layerscale"] = "layerscale"
    init: float = 1e-6


@register
class LayerScale(LayerKind):
    name = "layerscale"
    family = "activation"
    Params = LayerScaleParams
    summary = "a learnable per-channel factor (ConvNeXt's layer scale), saved under the layer's own name"
    traits = Traits(pointwise=True)
    field = "pointwise"
    ranges = {"init": values(1e-6, 0.5)}

    def state(self, p: LayerScaleParams, shape: Shape) -> tuple[Tensor, ...]:
        """C factors, broadcast over the positions of a channels-first map; one parameter saved as
        `path`, not `path.weight`, as torchvision's `layer_scale`."""
        return (Tensor("", (shape[0], *[1] * (len(shape) - 1)), Constant(p.init, (0.5, 1.5))),)
