"""Convolutions: `conv` (1D/2D/3D by the input's rank), `deconv` (transposed) and `upsample`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from cnnspec.codes import Code
from cnnspec.layers.base import (
    Everything,
    Grouped,
    LayerError,
    LayerKind,
    Params,
    Resampled,
    Shape,
    Sliding,
    Taps,
    Tensor,
    Traits,
    Transposed,
    Warning_,
    Window,
    describe_shape,
    dims_text,
    is_uniform,
    kernel_state,
    kernel_text,
    need_spatial,
    per_dim,
    per_parameters,
    register,
    resolve_padding,
)
from cnnspec.layers.domains import BOOL, Choice, Divisors, Ints, Nested, OneOf, Pairs, PerDim, Where, values
from cnnspec.layers.formulas import product, transposed_output_size, window_output_size

Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
IntOrDims = Union[Positive, tuple[Positive, ...]]
Padding = Union[NonNegative, tuple[NonNegative, ...], tuple[tuple[NonNegative, NonNegative], ...],
                Literal["same", "valid"]]
PadMode = Literal["zeros", "reflect", "replicate", "circular"]


class ConvParams(Params):
    kind: Literal["conv"] = "conv"
    out: Positive
    kernel: IntOrDims | None = None
    stride: IntOrDims = 1
    pad: Padding = 0
    pad_mode: PadMode = "zeros"
    dilation: IntOrDims = 1
    groups: Positive = 1
    depthwise: bool = False
    bias: bool = True
    weights: tuple[Any, ...] | None = None
    frozen: bool = False


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a backend needs, resolved against the input shape."""

    rank: int
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def symmetric(self) -> bool:
        return all(b == e for b, e in self.pads)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)


def nested_shape(values) -> tuple[int, ...]:
    """The shape of a nested tuple of numbers, or `LayerError` if it is ragged.

    >>> nested_shape(((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)))
    (3, 3)
    """
    if not isinstance(values, tuple):
        return ()
    if not values:
        raise LayerError(Code.WEIGHTS_MISMATCH, "`weights` is empty", arg="weights")
    inner = [nested_shape(v) for v in values]
    if any(s != inner[0] for s in inner):
        raise LayerError(Code.WEIGHTS_MISMATCH, "`weights` rows have different lengths", arg="weights")
    return (len(values), *inner[0])


def flatten_numbers(values) -> list[float]:
    if isinstance(values, tuple):
        return [x for v in values for x in flatten_numbers(v)]
    if isinstance(values, bool) or not isinstance(values, (int, float)):
        raise LayerError(Code.WEIGHTS_MISMATCH, f"`weights` must hold numbers, found `{values}`", arg="weights")
    return [float(values)]


@per_parameters
def conv_geometry(p: ConvParams, shape: Shape) -> ConvGeometry:
    """Kernel, stride, padding, dilation and groups of a conv on an input, resolved."""
    rank = need_spatial("conv", shape)
    in_c = shape[0]
    kernel = p.kernel
    if kernel is None:
        if p.weights is None:
            raise LayerError(Code.WRONG_POSITIONALS, "`conv` needs a kernel size, such as `conv 64 3x3`", arg="out",
                             help="give the kernel after the channel count: `conv 64 3x3`")
        kernel = nested_shape(p.weights)[-rank:]
        if len(kernel) < rank:
            raise LayerError(Code.WEIGHTS_MISMATCH, f"`weights` has {len(kernel)} dimensions; a {rank}D kernel needs at least {rank}",
                             arg="weights")
    if isinstance(kernel, tuple) and len(kernel) != rank:
        written = "x".join(map(str, kernel))
        raise LayerError(Code.KERNEL_RANK_MISMATCH, f"a {len(kernel)}D kernel `{written}` on a {rank}D input {describe_shape(shape)}",
                         arg="kernel", label=f"this kernel has {len(kernel)} dimensions",
                         help=f"write {rank} sizes, such as `{'x'.join(['3'] * rank)}`")
    kernel = per_dim(kernel, rank, "kernel")
    stride = per_dim(p.stride, rank, "stride")
    dilation = per_dim(p.dilation, rank, "dilation")
    groups = in_c if p.depthwise else p.groups
    if p.depthwise and p.groups != 1 and p.groups != in_c:
        raise LayerError(Code.GROUPS_MISMATCH, f"`depthwise` sets groups to the {in_c} input channels, but `groups={p.groups}` was given",
                         arg="groups")
    if in_c % groups:
        raise LayerError(Code.GROUPS_MISMATCH, f"groups={groups} does not divide the {in_c} input channels", arg="groups",
                         help=f"choose groups among the divisors of {in_c}")
    if p.out % groups:
        what = "depthwise conv" if p.depthwise else f"groups={groups}"
        raise LayerError(Code.GROUPS_MISMATCH, f"{what} needs output channels divisible by {groups}, got {p.out}", arg="out",
                         help=f"use a multiple of {groups}, such as {groups * max(1, round(p.out / groups))}")
    pads = resolve_padding(p.pad, rank, shape[1:], kernel, stride, dilation)
    return ConvGeometry(rank, in_c, p.out, kernel, stride, pads, dilation, groups)


def literal_shape(where: Where) -> tuple[int, ...]:
    """The shape of a literal kernel for the options drawn so far: out x in/groups x kernel."""
    groups = where.channels if where.get("depthwise") else where.get("groups", 1)
    kernel = where.get("kernel", 3)
    kernel = kernel if isinstance(kernel, tuple) else (kernel,) * where.rank
    return (where.get("out"), where.channels // groups, *kernel)


def check_windows(kind: str, sizes, kernel, stride, pads, dilation, ceil: bool = False) -> tuple[int, ...]:
    """Output sizes of a sliding window, with E210/E211 when a window does not fit."""
    out = []
    for axis, (n, k, s, (b, e), d) in enumerate(zip(sizes, kernel, stride, pads, dilation)):
        k_eff = d * (k - 1) + 1
        if k_eff > n + b + e:
            extra = f" (dilated to {k_eff})" if d > 1 else ""
            raise LayerError(Code.KERNEL_TOO_LARGE, f"`{kind}` kernel {k}{extra} is larger than the padded input {n + b + e} "
                                     f"(size {n}, padding {b}+{e})",
                             arg="kernel", label="kernel too large",
                             help="pad the input, use a smaller kernel, or remove an earlier downsampling layer")
        size = window_output_size(n, k, s, b, e, d, ceil)
        if size <= 0:
            raise LayerError(Code.EMPTY_OUTPUT, f"`{kind}` gives an output size of {size} along spatial axis {axis + 1}",
                             arg="stride")
        out.append(size)
    return tuple(out)


def _kernel_brief(p, rank: int, stride_mark: str) -> list[str]:
    """A conv's or a transposed conv's diagram words: `64 3x3 /2 dil 2 groups 4`, the stride
    marked `/` where it divides the map and `↑` where it multiplies it."""
    words = [str(p.out), kernel_text(p.kernel, rank)]
    if not is_uniform(p.stride, 1):
        words.append(stride_mark + dims_text(p.stride))
    if not is_uniform(p.dilation, 1):
        words.append("dil " + dims_text(p.dilation))
    if getattr(p, "depthwise", False):
        words.append("depthwise")
    elif p.groups != 1:
        words.append(f"groups {p.groups}")
    if getattr(p, "frozen", False):
        words.append("frozen")
    return words


@register
class Conv(LayerKind):
    name = "conv"
    family = "convolution"
    Params = ConvParams
    positional = ("out", "kernel")
    flags = {"depthwise": ("depthwise", True), "frozen": ("frozen", True), "same": ("pad", "same"),
             "valid": ("pad", "valid")}
    summary = "convolution over 1, 2 or 3 spatial dimensions (Conv1d/2d/3d)"
    traits = Traits(bias=True)
    pytorch_names = {"convolution": None}
    field = "reads"
    ranges = {
        "groups": Divisors(),
        "depthwise": values(True, chance=0.25, when=lambda w: w.get("groups", w.channels) == w.channels),
        "out": Ints(1, 3, times=lambda w: w.channels if w.get("depthwise") else w.get("groups", 1)),
        "kernel": PerDim(Ints(1, 3), chance=0.9),
        "stride": PerDim(Ints(1, 2)),
        "pad": OneOf((Ints(0, 2), PerDim(Ints(0, 1)), Pairs(Ints(0, 2)), values("same", "valid"))),
        "pad_mode": values("zeros", "reflect", "replicate", "circular"),
        "dilation": PerDim(Ints(1, 2), chance=0.25),
        "bias": BOOL,
        "weights": Nested(values(-2, -1, 0, 1, 2, 0.5, -0.25), lambda w: literal_shape(w), chance=0.2),
        "frozen": values(True, chance=0.25),
    }
    training_only = ("frozen",)

    def infer_shape(self, p: ConvParams, shape: Shape) -> Shape:
        g = conv_geometry(p, shape)
        if p.weights is not None:
            self._check_weights(p, g)
        if p.pad_mode != "zeros":
            for n, (b, e) in zip(shape[1:], g.pads):
                if p.pad_mode == "reflect" and max(b, e) >= n:
                    raise LayerError(Code.KERNEL_TOO_LARGE, f"reflect padding of {max(b, e)} needs an input larger than that, got {n}",
                                     arg="pad")
                if p.pad_mode == "circular" and max(b, e) > n:
                    raise LayerError(Code.KERNEL_TOO_LARGE, f"circular padding of {max(b, e)} is larger than the input {n}", arg="pad")
        sizes = check_windows("conv", shape[1:], g.kernel, g.stride, g.pads, g.dilation)
        return (p.out, *sizes)

    def _check_weights(self, p: ConvParams, g: ConvGeometry) -> None:
        have = nested_shape(p.weights)
        want = g.weight_shape
        # a bare kernel (or one output channel's weights) stands for leading dimensions of 1
        padded = (1,) * (len(want) - len(have)) + have
        if padded != want:
            raise LayerError(Code.WEIGHTS_MISMATCH, f"`weights` has shape {describe_shape(have)}, the kernel needs {describe_shape(want)}",
                             arg="weights", help="give one number per weight: out x in/groups x kernel")
        flatten_numbers(p.weights)

    def state(self, p: ConvParams, shape: Shape) -> tuple[Tensor, ...]:
        """Cout * (Cin/groups) * prod(k) weights + (Cout if bias); literal weights as given."""
        g = conv_geometry(p, shape)
        return kernel_state(g.weight_shape, g.out_channels, p.bias, p.weights, p.frozen)

    def count_macs(self, p: ConvParams, shape: Shape, out: Shape) -> int:
        """Cout * (Cin/groups) * prod(k) * prod(out spatial)."""
        g = conv_geometry(p, shape)
        return product(g.weight_shape) * product(out[1:])

    def brief(self, p: ConvParams, rank: int) -> list[str]:
        return _kernel_brief(p, rank, "/")

    def window(self, p: ConvParams, shape: Shape, out: Shape) -> Window:
        g = conv_geometry(p, shape)
        return Window(tuple(Sliding(k, s, pads[0], d, p.pad_mode) for k, s, pads, d in
                            zip(g.kernel, g.stride, g.pads, g.dilation)))

    def feature_reads(self, p: ConvParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {0: channel_groups(conv_geometry(p, shape).groups, shape, out)}

    def warnings(self, p: ConvParams, shape: Shape) -> list[Warning_]:
        g = conv_geometry(p, shape)
        if p.pad == "same" and not g.symmetric:
            pads = ", ".join(f"{b}+{e}" for b, e in g.pads)
            return [Warning_(Code.SAME_PADDING_ASYMMETRIC, f"`same` padding is asymmetric here ({pads}): the extra pixel goes at the end",
                             arg="pad", help="an odd kernel with stride 1 pads symmetrically; PyTorch's Conv "
                                             "cannot pad asymmetrically, so the backend pads explicitly first")]
        return []


class DeconvParams(Params):
    kind: Literal["deconv"] = "deconv"
    out: Positive
    kernel: IntOrDims
    stride: IntOrDims = 1
    pad: Union[NonNegative, tuple[NonNegative, ...]] = 0
    output_pad: Union[NonNegative, tuple[NonNegative, ...]] = 0
    dilation: IntOrDims = 1
    groups: Positive = 1
    bias: bool = True


@dataclass(frozen=True)
class DeconvGeometry:
    rank: int
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    output_pad: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def weight_shape(self) -> tuple[int, ...]:
        # ConvTranspose keeps input channels first: (Cin, Cout/groups, *k)
        return (self.in_channels, self.out_channels // self.groups, *self.kernel)


@per_parameters
def deconv_geometry(p: DeconvParams, shape: Shape) -> DeconvGeometry:
    rank = need_spatial("deconv", shape)
    if isinstance(p.kernel, tuple) and len(p.kernel) != rank:
        raise LayerError(Code.KERNEL_RANK_MISMATCH, f"a {len(p.kernel)}D kernel on a {rank}D input {describe_shape(shape)}", arg="kernel")
    g = DeconvGeometry(rank, shape[0], p.out, per_dim(p.kernel, rank, "kernel"), per_dim(p.stride, rank, "stride"),
                       per_dim(p.pad, rank, "pad"), per_dim(p.output_pad, rank, "output_pad"),
                       per_dim(p.dilation, rank, "dilation"), p.groups)
    for name, channels in (("input", g.in_channels), ("output", g.out_channels)):
        if channels % g.groups:
            raise LayerError(Code.GROUPS_MISMATCH, f"groups={g.groups} does not divide the {channels} {name} channels", arg="groups")
    for op, s, d in zip(g.output_pad, g.stride, g.dilation):
        if op >= max(s, d):
            raise LayerError(Code.INVALID_VALUE, f"`output_pad` must be smaller than the stride or the dilation, got {op}",
                             arg="output_pad")
    return g


@register
class Deconv(LayerKind):
    name = "deconv"
    family = "transposed"
    Params = DeconvParams
    positional = ("out", "kernel")
    summary = "transposed convolution (ConvTranspose1d/2d/3d)"
    traits = Traits(bias=True)
    pytorch_names = {"convtranspose": None, "transposedconv": None, "deconvolution": None}
    field = "reads"
    ranges = {
        "groups": Divisors(),
        "out": Ints(1, 3, times=lambda w: w.get("groups", 1)),
        "kernel": PerDim(Ints(1, 3)),
        "stride": Ints(1, 2),
        "dilation": Ints(1, 2),
        "pad": PerDim(Ints(0, 1)),
        "output_pad": Ints(0, lambda w: max(w.get("stride", 1), w.get("dilation", 1)) - 1,
                           when=lambda w: max(w.get("stride", 1), w.get("dilation", 1)) > 1),
        "bias": BOOL,
    }

    def infer_shape(self, p: DeconvParams, shape: Shape) -> Shape:
        g = deconv_geometry(p, shape)
        sizes = []
        for axis, (n, k, s, pd, op, d) in enumerate(zip(shape[1:], g.kernel, g.stride, g.pad, g.output_pad, g.dilation)):
            size = transposed_output_size(n, k, s, pd, pd, d, op)
            if size <= 0:
                raise LayerError(Code.EMPTY_OUTPUT, f"`deconv` gives an output size of {size} along spatial axis {axis + 1}", arg="pad",
                                 label="padding removes more than the layer produces",
                                 help="out = (n - 1)*stride - 2*pad + dilation*(kernel - 1) + output_pad + 1")
            sizes.append(size)
        return (p.out, *sizes)

    def state(self, p: DeconvParams, shape: Shape) -> tuple[Tensor, ...]:
        """Cin * (Cout/groups) * prod(k) weights + (Cout if bias)."""
        g = deconv_geometry(p, shape)
        return kernel_state(g.weight_shape, g.out_channels, p.bias)

    def count_macs(self, p: DeconvParams, shape: Shape, out: Shape) -> int:
        """Cin * (Cout/groups) * prod(k) * prod(in spatial): each input element scatters a kernel."""
        g = deconv_geometry(p, shape)
        return product(g.weight_shape) * product(shape[1:])

    def brief(self, p: DeconvParams, rank: int) -> list[str]:
        return _kernel_brief(p, rank, "↑")

    def window(self, p: DeconvParams, shape: Shape, out: Shape) -> Window:
        g = deconv_geometry(p, shape)
        return Window(tuple(Transposed(k, s, pad, d) for k, s, pad, d in zip(g.kernel, g.stride, g.pad, g.dilation)))

    def feature_reads(self, p: DeconvParams, shape: Shape, out: Shape) -> dict[int, Taps]:
        return {0: channel_groups(deconv_geometry(p, shape).groups, shape, out)}


def channel_groups(groups: int, shape: Shape, out: Shape) -> Taps:
    """A grouped convolution's outputs read the channels of their group alone."""
    return Everything() if groups == 1 else Grouped(shape[0] // groups, out[0] // groups)


class UpsampleParams(Params):
    kind: Literal["upsample"] = "upsample"
    scale: IntOrDims | None = None
    size: IntOrDims | None = None
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: bool = False


@register
class Upsample(LayerKind):
    name = "upsample"
    family = "transposed"
    Params = UpsampleParams
    positional = ("scale",)
    flags = {"nearest": ("mode", "nearest"), "bilinear": ("mode", "bilinear")}
    summary = "upsampling by an integer factor or to a size (nearest or bilinear); `size=c1` to a value's size"
    pytorch_names = {"upsamplingnearest": None, "upsamplingbilinear": "upsample 2 bilinear"}
    field = "reads"
    size_from_value = "size"
    ranges = {
        "scale": PerDim(Ints(1, 2)),
        "size": PerDim(Ints(1, 14), when=lambda w: "scale" not in w.fields, chance=1.0),
        "mode": Choice(lambda w: ("nearest", "bilinear") if w.rank == 2 else ("nearest",)),
        "align_corners": values(False, True, when=lambda w: w.get("mode") == "bilinear"),
    }

    def infer_shape(self, p: UpsampleParams, shape: Shape) -> Shape:
        rank = need_spatial("upsample", shape)
        if (p.scale is None) == (p.size is None):
            raise LayerError(Code.WRONG_POSITIONALS, "`upsample` needs exactly one of `scale` or `size`", arg="scale",
                             help="write `upsample 2` or `upsample size=14x14`")
        if p.mode == "bilinear" and rank != 2:
            raise LayerError(Code.WRONG_INPUT_RANK, f"`bilinear` upsampling needs a 2D feature map, got {describe_shape(shape)}", arg="mode")
        if p.align_corners and p.mode == "nearest":
            raise LayerError(Code.INVALID_VALUE, "`align_corners` applies only to `bilinear` upsampling", arg="align_corners")
        if p.size is not None:
            return (shape[0], *per_dim(p.size, rank, "size"))
        return (shape[0], *(n * f for n, f in zip(shape[1:], per_dim(p.scale, rank, "scale"))))

    def brief(self, p: UpsampleParams, rank: int) -> list[str]:
        return [f"x{dims_text(p.scale)}" if p.scale is not None else dims_text(p.size), p.mode]

    def window(self, p: UpsampleParams, shape: Shape, out: Shape) -> Window:
        rule = "nearest" if p.mode == "nearest" else "corners" if p.align_corners else "linear"
        # the backend passes a factor, not a size, when the spec gives one: PyTorch then maps by it
        factors = per_dim(p.scale, len(shape) - 1, "scale") if p.scale is not None else (None,) * (len(shape) - 1)
        return Window(tuple(Resampled(n, m, rule, float(f) if f else None) for n, m, f in zip(shape[1:], out[1:], factors)))
