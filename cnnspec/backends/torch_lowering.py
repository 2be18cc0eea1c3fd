"""How each layer kind becomes a PyTorch module: one lowering per kind, keyed like the registry.

A lowering describes a constructor call (`nn.Conv2d(3, 64, kernel_size=7, stride=2, ...)`)
without importing torch, so `Network.to_torch()` instantiates it and `cnnspec emit torch`
prints it: both backends build every layer from the same description. Options left at
PyTorch's defaults are not written, so generated code reads like code written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from cnnspec.graph import LayerNode
from cnnspec.layers import REGISTRY
from cnnspec.layers.conv import conv_geometry, deconv_geometry
from cnnspec.layers.pool import pool_geometry
from cnnspec.registry import Registry

#: helper classes defined in `cnnspec.backends.torch_modules` rather than `torch.nn`
HELPERS = ("ChannelLayerNorm", "Reshape", "ChannelShuffle", "Chunk", "Mul", "ChannelsLast", "ChannelsFirst")

#: F.pad's name for each of the spec's pad modes
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@dataclass(frozen=True)
class ModuleCall:
    """A module constructor: class name, positional and keyword arguments."""

    name: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def is_helper(self) -> bool:
        return self.name in HELPERS

    def source(self) -> str:
        """The constructor as Python source.

        >>> ModuleCall("Conv2d", (3, 64), (("kernel_size", 7), ("bias", False))).source()
        'nn.Conv2d(3, 64, kernel_size=7, bias=False)'
        """
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        prefix = "" if self.is_helper else "nn."
        return f"{prefix}{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class Lowering:
    """One layer in PyTorch: the module, and explicit padding applied before it when the
    module cannot pad as the spec asks (asymmetric padding, from `same` or written out)."""

    #: none for a layer written as an expression (`inline`)
    module: ModuleCall | None
    #: F.pad's argument: (begin, end) pairs from the last dimension to the first
    pad: tuple[int, ...] | None = None
    pad_mode: str = "constant"
    #: literal weights from the spec, nested as written
    weights: tuple | None = None
    frozen: bool = False
    #: a bare parameter (layer scale) of this shape and initial value instead of a module
    parameter: tuple[tuple[int, ...], float] | None = None
    #: the key of the value whose spatial size `module` (then a call of `F.interpolate`, no
    #: module) resizes to, read at run time: `F.interpolate(x, size=c1.shape[2:], mode="nearest")`
    size_from: str | None = None
    #: the layer as a Python expression of its input `{x}` instead of a module, as PyTorch users
    #: write it (`{x}[:, 16:48]`): `to_torch()` evaluates it, `emit torch` writes it in the forward
    inline: str | None = None


def collapse(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """One number when every dimension agrees, as PyTorch users write it.

    >>> collapse((3, 3)), collapse((1, 3))
    (3, (1, 3))
    """
    return values[0] if len(set(values)) == 1 else tuple(values)


def options(**pairs) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments, dropping those given as `None` (meaning: PyTorch's default)."""
    return tuple((k, v) for k, v in pairs.items() if v is not None)


def unless(value, default):
    return None if value == default else value


#: each layer kind's PyTorch lowering: (params, input shape, output shape) -> Lowering
LOWERINGS: Registry[str, Callable[[Any, tuple, tuple], Lowering]] = Registry("PyTorch lowering for `{}`")
lowers = LOWERINGS.registers


def lower(node: LayerNode) -> Lowering:
    lowering = LOWERINGS[node.kind](node.params, node.in_shape, node.out_shape)
    if node.size_from is not None:
        # to another value's size, read in the forward, as torchvision's FPN resizes: the
        # module's options but its size (`mode`, `align_corners`) are F.interpolate's
        kwargs = tuple((k, v) for k, v in lowering.module.kwargs if k not in ("size", "scale_factor"))
        return replace(lowering, module=ModuleCall("interpolate", (), kwargs), size_from=node.size_from)
    return lowering


# ---------------------------------------------------------------- convolutions

@lowers("conv")
def lower_conv(p, shape, out) -> Lowering:
    g = conv_geometry(p, shape)
    symmetric = g.symmetric
    padding = tuple(b for b, _ in g.pads) if symmetric else (0,) * g.rank
    mode = p.pad_mode if symmetric and any(padding) else "zeros"
    module = ModuleCall(f"Conv{g.rank}d", (g.in_channels, g.out_channels), options(
        kernel_size=collapse(g.kernel), stride=unless(collapse(g.stride), 1),
        padding=unless(collapse(padding), 0), dilation=unless(collapse(g.dilation), 1),
        groups=unless(g.groups, 1), bias=unless(p.bias, True), padding_mode=unless(mode, "zeros")))
    pad = None
    if not symmetric:
        pad = tuple(x for b, e in reversed(g.pads) for x in (b, e))
    return Lowering(module, pad, PAD_MODES[p.pad_mode], p.weights, p.frozen)


@lowers("deconv")
def lower_deconv(p, shape, out) -> Lowering:
    g = deconv_geometry(p, shape)
    return Lowering(ModuleCall(f"ConvTranspose{g.rank}d", (g.in_channels, g.out_channels), options(
        kernel_size=collapse(g.kernel), stride=unless(collapse(g.stride), 1), padding=unless(collapse(g.pad), 0),
        output_padding=unless(collapse(g.output_pad), 0), groups=unless(g.groups, 1), bias=unless(p.bias, True),
        dilation=unless(collapse(g.dilation), 1))))


@lowers("upsample")
def lower_upsample(p, shape, out) -> Lowering:
    if p.size is not None:
        size = collapse(out[1:])
        scale = None
    else:
        size = None
        scale = collapse(tuple(float(o // n) for n, o in zip(shape[1:], out[1:])))
    align = True if p.mode == "bilinear" and p.align_corners else (False if p.mode == "bilinear" else None)
    return Lowering(ModuleCall("Upsample", (), options(size=size, scale_factor=scale, mode=p.mode,
                                                       align_corners=align)))


# ---------------------------------------------------------------- pooling

@lowers("maxpool", "avgpool")
def lower_pool(p, shape, out) -> Lowering:
    kind = "Max" if p.kind == "maxpool" else "Avg"
    g = pool_geometry(p.kind, p, shape)
    if g.mode != "window":
        return Lowering(ModuleCall(f"Adaptive{kind}Pool{g.rank}d", (collapse(out[1:]),)))
    common = dict(kernel_size=collapse(g.kernel), stride=collapse(g.stride), padding=unless(collapse(g.pad), 0))
    if kind == "Max":
        kwargs = options(**common, dilation=unless(collapse(g.dilation), 1), ceil_mode=unless(p.ceil, False))
    else:
        kwargs = options(**common, ceil_mode=unless(p.ceil, False), count_include_pad=unless(p.count_pad, True))
    return Lowering(ModuleCall(f"{kind}Pool{g.rank}d", (), kwargs))


# ---------------------------------------------------------------- normalisation

def norm_rank(shape) -> int:
    """BatchNorm1d takes (N, C) and (N, C, L); 2d and 3d take 2 and 3 spatial dimensions."""
    return max(1, len(shape) - 1)


@lowers("bn")
def lower_bn(p, shape, out) -> Lowering:
    return Lowering(ModuleCall(f"BatchNorm{norm_rank(shape)}d", (shape[0],), options(
        eps=unless(p.eps, 1e-5), momentum=unless(p.momentum, 0.1), affine=unless(p.affine, True))))


@lowers("instancenorm")
def lower_instancenorm(p, shape, out) -> Lowering:
    return Lowering(ModuleCall(f"InstanceNorm{len(shape) - 1}d", (shape[0],), options(
        eps=unless(p.eps, 1e-5), momentum=unless(p.momentum, 0.1), affine=unless(p.affine, False),
        track_running_stats=unless(p.track_running_stats, False))))


@lowers("ln")
def lower_ln(p, shape, out) -> Lowering:
    if p.last:
        return Lowering(ModuleCall("LayerNorm", (shape[-1],), options(
            eps=unless(p.eps, 1e-5), elementwise_affine=unless(p.affine, True))))
    return Lowering(ModuleCall("ChannelLayerNorm", (shape[0],), options(
        eps=unless(p.eps, 1e-5), elementwise_affine=unless(p.affine, True))))


@lowers("groupnorm")
def lower_groupnorm(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("GroupNorm", (p.groups, shape[0]), options(
        eps=unless(p.eps, 1e-5), affine=unless(p.affine, True))))


@lowers("lrn")
def lower_lrn(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("LocalResponseNorm", (p.size,), options(
        alpha=unless(p.alpha, 1e-4), beta=unless(p.beta, 0.75), k=unless(p.k, 1.0))))


# ---------------------------------------------------------------- activations and dropout

SIMPLE = {"relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid",
          "sigmoid": "Sigmoid", "tanh": "Tanh", "flatten": "Flatten", "identity": "Identity"}


@lowers(*SIMPLE)
def lower_simple(p, shape, out) -> Lowering:
    return Lowering(ModuleCall(SIMPLE[p.kind]))


@lowers("leaky_relu")
def lower_leaky_relu(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("LeakyReLU", (p.slope,) if p.slope != 0.01 else ()))


@lowers("elu")
def lower_elu(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("ELU", (), options(alpha=unless(p.alpha, 1.0))))


@lowers("gelu")
def lower_gelu(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("GELU", (), options(approximate=unless(p.approximate, "none"))))


@lowers("softmax")
def lower_softmax(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Softmax", (), (("dim", 1),)))


@lowers("mul")
def lower_mul(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Mul", (p.factor,)))


@lowers("dropout")
def lower_dropout(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Dropout", (p.p,) if p.p != 0.5 else ()))


@lowers("dropout2d")
def lower_channel_dropout(p, shape, out) -> Lowering:
    # channel dropout by the map's rank: whole channels of (C, L), (C, H, W) or (C, D, H, W);
    # a flat vector's "channels" are its elements
    name = {0: "Dropout", 1: "Dropout1d", 2: "Dropout2d", 3: "Dropout3d"}[len(shape) - 1]
    return Lowering(ModuleCall(name, (p.p,) if p.p != 0.5 else ()))


# ---------------------------------------------------------------- shape and dense

@lowers("reshape")
def lower_reshape(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Reshape", tuple(out)))


@lowers("channel_shuffle")
def lower_channel_shuffle(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("ChannelShuffle", (p.groups,)))


@lowers("chunk")
def lower_chunk(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Chunk", (p.chunks, p.index)))


@lowers("slice")
def lower_slice(p, shape, out) -> Lowering:
    start = p.start or ""
    end = "" if p.end is None else p.end
    return Lowering(None, inline=f"{{x}}[:, {start}:{end}]")


@lowers("split")
def lower_split(p, shape, out) -> Lowering:
    sizes = list(p.sizes) if isinstance(p.sizes, tuple) else p.sizes
    return Lowering(None, inline=f"torch.split({{x}}, {sizes!r}, dim=1)[{p.index}]")


@lowers("linear")
def lower_linear(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("Linear", (shape[-1], p.out), options(bias=unless(p.bias, True))))


@lowers("channels_last")
def lower_channels_last(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("ChannelsLast"))


@lowers("channels_first")
def lower_channels_first(p, shape, out) -> Lowering:
    return Lowering(ModuleCall("ChannelsFirst"))


@lowers("layerscale")
def lower_layerscale(p, shape, out) -> Lowering:
    (factor,) = REGISTRY["layerscale"].state(p, shape)
    return Lowering(ModuleCall("Parameter"), parameter=(factor.shape, p.init))

