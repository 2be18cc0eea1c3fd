"""Pooling: `maxpool` and `avgpool`, with sliding, `global` and `adaptive` forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from cnnspec.codes import Code
from cnnspec.layers.base import (
    Everything,
    LayerError,
    LayerKind,
    Params,
    Resampled,
    Shape,
    Sliding,
    Window,
    dims_text,
    is_uniform,
    kernel_text,
    need_spatial,
    per_dim,
    register,
)
from cnnspec.layers.conv import IntOrDims, NonNegative, check_windows
from cnnspec.layers.domains import Ints, PerDim, Where, values


class PoolParams(Params):
    kernel: IntOrDims | None = None
    stride: IntOrDims | None = None
    pad: Union[NonNegative, tuple[NonNegative, ...]] = 0
    ceil: bool = False
    dilation: IntOrDims = 1
    count_pad: bool = True
    global_: bool = False
    adaptive: bool = False


class MaxPoolParams(PoolParams):
    kind: Literal["maxpool"] = "maxpool"


class AvgPoolParams(PoolParams):
    kind: Literal["avgpool"] = "avgpool"


@dataclass(frozen=True)
class PoolGeometry:
    rank: int
    mode: Literal["window", "global", "adaptive"]
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    pad: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    output_size: tuple[int, ...] = ()


def pool_geometry(kind: str, p: PoolParams, shape: Shape) -> PoolGeometry:
    rank = need_spatial(kind, shape)
    if p.global_:
        if p.kernel is not None or p.adaptive:
            raise LayerError(Code.INVALID_VALUE, f"`{kind} global` takes no kernel size", arg="kernel")
        return PoolGeometry(rank, "global", output_size=(1,) * rank)
    if p.kernel is None:
        form = "adaptive 7x7" if p.adaptive else "2x2 stride=2"
        raise LayerError(Code.WRONG_POSITIONALS, f"`{kind}` needs a kernel size, such as `{kind} {form}`, or `{kind} global`", arg="kernel")
    if p.adaptive:
        return PoolGeometry(rank, "adaptive", output_size=per_dim(p.kernel, rank, "kernel"))
    kernel = per_dim(p.kernel, rank, "kernel")
    stride = per_dim(p.stride, rank, "stride") if p.stride is not None else kernel
    pad = per_dim(p.pad, rank, "pad")
    dilation = per_dim(p.dilation, rank, "dilation")
    for k, pd in zip(kernel, pad):
        if pd * 2 > k:
            raise LayerError(Code.INVALID_VALUE, f"`{kind}` padding {pd} is more than half the kernel {k}", arg="pad",
                             help="PyTorch refuses pooling padding above half the kernel size")
    return PoolGeometry(rank, "window", kernel, stride, pad, dilation)


def blind_window(n: int, out: int, k: int, s: int, pad: int, d: int) -> int | None:
    """The first window whose taps all fall in the padding (possible only with dilation), or None.

    Only the windows near the borders can be blind, so only those are looked at: the first
    `border` ones, then the last (counted from the end, so that a size the input-size analysis
    leaves symbolic needs no number here).

    >>> blind_window(1, 1, 2, 2, 1, 2), blind_window(8, 4, 2, 2, 0, 1)
    (0, None)
    """
    if d == 1:
        return None
    border = min(out, (k * d) // max(s, 1) + 2)
    for i in [*range(border), *(out - border + t for t in range(border))]:
        start = i * s - pad
        if not any(0 <= start + j * d < n for j in range(k)):
            return i
    return None


def sliding(where: Where) -> bool:
    return not (where.get("global_") or where.get("adaptive"))


def smallest_kernel(where: Where) -> int:
    kernel = where.get("kernel", 1)
    return min(kernel) if isinstance(kernel, tuple) else kernel


class _Pool(LayerKind):
    family = "pooling"
    field = "reads"
    positional = ("kernel",)
    flags = {"global": ("global_", True), "adaptive": ("adaptive", True), "ceil": ("ceil", True)}
    ranges = {
        "global_": values(True, chance=0.25),
        "adaptive": values(True, chance=0.33, when=lambda w: not w.get("global_")),
        "kernel": PerDim(Ints(1, lambda w: 3 if sliding(w) else 4), chance=1.0, when=lambda w: not w.get("global_")),
        "stride": PerDim(Ints(1, 3), when=sliding),
        "pad": Ints(0, lambda w: smallest_kernel(w) // 2, when=lambda w: sliding(w) and smallest_kernel(w) >= 2),
        "ceil": values(False, True, when=sliding),
        "dilation": PerDim(Ints(1, 2), chance=0.25, when=sliding),
        "count_pad": values(False, True, when=sliding),
    }

    def infer_shape(self, p: PoolParams, shape: Shape) -> Shape:
        g = pool_geometry(self.name, p, shape)
        if g.mode != "window":
            return (shape[0], *g.output_size)
        sizes = check_windows(self.name, shape[1:], g.kernel, g.stride, tuple((q, q) for q in g.pad), g.dilation, p.ceil)
        for n, out, k, s, pad, d in zip(shape[1:], sizes, g.kernel, g.stride, g.pad, g.dilation):
            empty = blind_window(n, out, k, s, pad, d)
            if empty is not None:
                raise LayerError(Code.KERNEL_TOO_LARGE, f"`{self.name}` window {empty} sees only padding: its dilated taps step over "
                                         f"the {n}-wide input", arg="dilation",
                                 help="reduce the dilation or the padding, or pool a larger map")
        return (shape[0], *sizes)

    def brief(self, p: PoolParams, rank: int) -> list[str]:
        if p.global_:
            return ["global"]
        if p.adaptive:
            return ["adaptive", kernel_text(p.kernel, rank)]
        stride = [] if p.stride is None or is_uniform(p.stride, p.kernel) else ["/" + dims_text(p.stride)]
        return [kernel_text(p.kernel, rank), *stride]

    def window(self, p: PoolParams, shape: Shape, out: Shape) -> Window:
        g = pool_geometry(self.name, p, shape)
        if g.mode == "window":
            return Window(tuple(Sliding(k, s, pad, d) for k, s, pad, d in zip(g.kernel, g.stride, g.pad, g.dilation)))
        # global pooling, and adaptive pooling to one position, read every position
        return Window(tuple(Everything() if m == 1 else Resampled(n, m, "bins") for n, m in zip(shape[1:], out[1:])))


@register
class MaxPool(_Pool):
    name = "maxpool"
    Params = MaxPoolParams
    summary = "max pooling over a window, globally or adaptively"
    # averaging alone counts the padding
    ranges = {**_Pool.ranges, "count_pad": values(True)}

    def infer_shape(self, p: PoolParams, shape: Shape) -> Shape:
        if not p.count_pad:
            raise LayerError(Code.UNKNOWN_OPTION, "`count_pad` applies to `avgpool` only", arg="count_pad")
        return super().infer_shape(p, shape)


@register
class AvgPool(_Pool):
    name = "avgpool"
    Params = AvgPoolParams
    summary = "average pooling over a window, globally or adaptively"
    pytorch_names = {"averagepool": None, "adaptiveavgpool": "avgpool adaptive 7x7", "globalaveragepool": "avgpool global"}
    # a maximum alone is dilated
    ranges = {**_Pool.ranges, "dilation": values(1)}

    def infer_shape(self, p: PoolParams, shape: Shape) -> Shape:
        if p.dilation != 1:
            raise LayerError(Code.UNKNOWN_OPTION, "`dilation` applies to `maxpool` only", arg="dilation")
        g = pool_geometry(self.name, p, shape)
        if g.mode == "window" and g.rank == 3 and any(n < k for n, k in zip(shape[1:], g.kernel)):
            # unlike 1D and 2D, PyTorch's avg_pool3d does not count the padding towards the fit
            raise LayerError(Code.KERNEL_TOO_LARGE, f"a 3D `avgpool` kernel {'x'.join(map(str, g.kernel))} is larger than the "
                                     f"unpadded input {'x'.join(map(str, shape[1:]))}", arg="kernel",
                             help="PyTorch's 3D average pooling needs the input itself to hold the kernel; "
                                  "use a smaller kernel or `avgpool global`")
        return super().infer_shape(p, shape)
