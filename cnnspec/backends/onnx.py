"""`Network.to_onnx()`: the resolved graph as an ONNX model, built with `onnx.helper`.

One `GraphBuilder` collects nodes and initializers; one lowering per layer kind (`LOWERINGS`,
keyed like the registry) emits that kind's nodes. Initializers carry the PyTorch backend's
state_dict keys (`layer1.0.conv1.weight`); constants derived from them carry the key and a
suffix after `:`. Every pad is explicit (`pads`, never `auto_pad`), average pooling always
states `count_include_pad`, and shapes cnnspec inferred are the ones declared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cnnspec.analysis.sizes import AXIS_NAMES, dynamic_sizes
from cnnspec.backends import onnx_dynamic
from cnnspec.backends.naming import unique_name
from cnnspec.backends.onnx_dims import DimNames, layer_shapes
from cnnspec.backends.onnx_shapes import declare_shapes
from cnnspec.backends.weights import DEFAULT_MEMORY_BUDGET, DrawnWeights, check_budget, prepare_weights
from cnnspec.codes import Code
from cnnspec.diagnostics import Diagnostic, SpecError
from cnnspec.graph import LayerNode, MergeNode, opened
from cnnspec.layers import REGISTRY
from cnnspec.layers.conv import ConvParams, conv_geometry, deconv_geometry
from cnnspec.layers.formulas import adaptive_bins
from cnnspec.layers.pool import pool_geometry
from cnnspec.registry import Registry

if TYPE_CHECKING:
    from cnnspec.graph import CheckedGraph

#: opsets cnnspec emits: 17 brings LayerNormalization; 26 is the newest onnxruntime 1.31 runs
MIN_OPSET, MAX_OPSET = 17, 26
DEFAULT_OPSET = 21
#: the IR version each opset needs (onnx.helper.VERSION_TABLE), not onnx's newest default,
#: which onnxruntime may refuse
IR_VERSIONS = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11, 24: 11, 25: 12, 26: 13}
PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
#: sums of at most this many values are left to onnxruntime's one-after-another ops (relative
#: error ~1e-7 there); longer ones are summed in two levels (`GraphBuilder.mean_last`)
NAIVE_SUM_LENGTH = 256


@dataclass
class GraphBuilder:
    """Nodes, initializers and unique tensor names for one graph."""

    opset: int
    #: spatial sizes symbolic: lowerings read sizes at run time instead of writing them down
    dynamic: bool = False
    nodes: list = field(default_factory=list)
    #: a list, or the repeated field of the model's graph that the initializers are made in
    initializers: list = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    #: the per-sample shape of each layer's and merge's output tensor, as cnnspec inferred it
    #: (with symbolic sizes, `onnx_dims.Dim`s where a size follows the input's), and of the
    #: tensors inside a lowering whose shape onnx's inference cannot tell
    shapes: dict[str, tuple] = field(default_factory=dict)
    #: the shapes of tensors without a batch that onnx's inference cannot tell
    full_shapes: dict[str, tuple] = field(default_factory=dict)
    #: with symbolic sizes, the per-sample output shape of the layer being lowered
    out_shape: tuple = ()
    #: each conv's initializers with a batch norm folded in, by the conv's path
    folded: dict[str, tuple[str, str]] = field(default_factory=dict)

    def fresh(self, base: str) -> str:
        name = unique_name(base, self.names, "_")
        self.names.add(name)
        return name

    def constant(self, name: str, array, dtype=np.float32) -> str:
        name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def ints(self, name: str, values) -> str:
        return self.constant(name, np.asarray(values, dtype=np.int64), np.int64)

    def op(self, op_type: str, inputs: list[str], output: str, shape: tuple | None = None,
           full_shape: tuple | None = None, **attributes) -> str:
        """A node of one output; where onnx's inference cannot tell its shape, `shape` (per sample)
        or `full_shape` (a tensor without a batch: indices, sizes)."""
        output = self.fresh(output)
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        if shape is not None:
            self.shapes[output] = tuple(shape)
        if full_shape is not None:
            self.full_shapes[output] = tuple(full_shape)
        return output

    def mean_last(self, x: str, n: int, output: str) -> str:
        """The mean over the last axis (length `n`) of an (N, K, n) tensor, keeping it, summed in
        two levels: the n values as an a x b grid (zero-padded, a = ceil(sqrt n)), its rows summed,
        then the row sums, then divided by n.

        onnxruntime's GlobalAveragePool, ReduceMean and InstanceNormalization add the values one
        after another, an error growing with n (relative 2e-4 over 65,575 values where PyTorch's
        cascaded sum is 2e-7 off a float64 mean); summing sqrt(n) sums of sqrt(n) values brings it
        to PyTorch's (2.4e-7 there).
        """
        rows = math.isqrt(n - 1) + 1
        columns = -(-n // rows)
        if rows * columns > n:
            x = self.op("Pad", [x, self.ints(f"{output}:pads", [0, 0, 0, 0, 0, rows * columns - n])],
                        f"{output}:padded")
        grid = self.op("Reshape", [x, self.ints(f"{output}:grid_shape", [0, 0, rows, columns])], f"{output}:grid")
        row_sums = self.op("ReduceSum", [grid, self.ints(f"{output}:columns", [3])], f"{output}:row_sums", keepdims=0)
        total = self.op("ReduceSum", [row_sums, self.ints(f"{output}:rows", [2])], f"{output}:sum", keepdims=1)
        return self.op("Div", [total, self.constant(f"{output}:count", float(n))], output)

    def reduce(self, op_type: str, x: str, axes: list[int], output: str, shape: tuple | None = None) -> str:
        """ReduceMean / ReduceMax, with axes as an input from opset 18 on."""
        if self.opset >= 18:
            return self.op(op_type, [x, self.ints(f"{output}:axes", axes)], output, shape=shape, keepdims=1)
        return self.op(op_type, [x], output, shape=shape, axes=axes, keepdims=1)


@dataclass
class Context:
    """What a lowering sees: the builder, the weights by key, the layer."""

    builder: GraphBuilder
    weights: dict[str, np.ndarray]
    node: LayerNode
    #: the tensor of each named value by key, for a layer that reads one besides its input
    values: dict[str, str] = field(default_factory=dict)

    def weight(self, name: str) -> str:
        """The initializer for `path.name` (`path` for a bare parameter), created once, named by its
        state_dict key."""
        key = f"{self.node.path}.{name}" if name else self.node.path
        if key not in self.builder.names:
            self.builder.names.add(key)
            # taken out of the weights (`to_onnx`'s own dict): the array is freed once it is copied
            # into its initializer, so the weights are not held twice while the graph is built
            self.builder.initializers.append(numpy_helper.from_array(np.asarray(self.weights.pop(key), np.float32),
                                                                     key))
        return key

    @property
    def path(self) -> str:
        return self.node.path


class ExportError(Exception):
    """A layer the chosen opset (E304), or an export with symbolic sizes (E220), cannot express:
    becomes a located diagnostic."""

    def __init__(self, message: str, node: LayerNode, code: Code = Code.NOT_AT_OPSET):
        super().__init__(message)
        self.node, self.code = node, code


#: each layer kind's ONNX lowering: (context, input name) -> output name
LOWERINGS: Registry[str, Callable[[Context, str], str]] = Registry("ONNX lowering for `{}`")
lowers = LOWERINGS.registers


def onnx_pads(pairs) -> list[int]:
    """ONNX lists all begins, then all ends."""
    return [b for b, _ in pairs] + [e for _, e in pairs]


# ---------------------------------------------------------------- convolutions

@lowers("conv")
def lower_conv(ctx: Context, x: str, folded: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> str:
    p = ctx.node.params
    g = conv_geometry(p, ctx.node.in_shape)
    b = ctx.builder
    pairs = g.pads
    if b.dynamic and p.pad == "same" and any(s > 1 for s in g.stride):
        # `same` padding with a stride depends on the size: ONNX's SAME_UPPER is the same rule
        if p.pad_mode != "zeros":
            raise ExportError(f"`same` padding with a stride and `pad_mode={p.pad_mode}` depends on the size, "
                              "which ONNX cannot pad by at run time", ctx.node, Code.SIZE_CANNOT_VARY)
        return b.op("Conv", conv_inputs(ctx, x, folded), ctx.path, kernel_shape=list(g.kernel),
                    strides=list(g.stride), auto_pad="SAME_UPPER", dilations=list(g.dilation), group=g.groups)
    if p.pad_mode != "zeros" and any(v for pair in pairs for v in pair):
        mode = PAD_MODES[p.pad_mode]
        if mode == "wrap" and b.opset < 19:
            raise ExportError(f"circular padding needs opset 19 or later (`Pad` mode `wrap`), "
                              f"the export asks for opset {b.opset}", ctx.node)
        full = [0, 0] + [v for v, _ in pairs] + [0, 0] + [v for _, v in pairs]
        padded = None
        if b.dynamic:
            channels, *spatial = b.shapes[x]
            padded = (channels, *(n + before + after for n, (before, after) in zip(spatial, pairs)))
        x = b.op("Pad", [x, b.ints(f"{ctx.path}:pads", full)], f"{ctx.path}:pad", shape=padded, mode=mode)
        pairs = ((0, 0),) * g.rank
    return b.op("Conv", conv_inputs(ctx, x, folded), ctx.path, kernel_shape=list(g.kernel), strides=list(g.stride),
                pads=onnx_pads(pairs), dilations=list(g.dilation), group=g.groups)


def conv_inputs(ctx: Context, x: str, folded) -> list[str]:
    """The input, the weight and the bias; with `folded` (which makes them with the following batch
    norm folded in), those initializers, made at the conv's first application and shared by the
    others (`use`)."""
    b = ctx.builder
    if folded is not None:
        if ctx.path not in b.folded:
            weight, bias = folded()
            b.folded[ctx.path] = (b.constant(f"{ctx.path}.weight", weight), b.constant(f"{ctx.path}.bias", bias))
        return [x, *b.folded[ctx.path]]
    return [x, ctx.weight("weight")] + ([ctx.weight("bias")] if ctx.node.params.bias else [])


@lowers("deconv")
def lower_deconv(ctx: Context, x: str) -> str:
    """ConvTranspose. onnxruntime refuses `output_padding` >= stride, which PyTorch allows when
    the dilation is larger; output padding only trims less of the end (or adds rows no input
    reaches: zero plus bias), so it is written as smaller end padding and joined zero rows."""
    p, b = ctx.node.params, ctx.builder
    g = deconv_geometry(p, ctx.node.in_shape)
    common = dict(kernel_shape=list(g.kernel), strides=list(g.stride), dilations=list(g.dilation), group=g.groups)
    if all(op < s for op, s in zip(g.output_pad, g.stride)):
        inputs = [x, ctx.weight("weight")] + ([ctx.weight("bias")] if p.bias else [])
        return b.op("ConvTranspose", inputs, ctx.path, pads=list(g.pad) * 2, output_padding=list(g.output_pad),
                    **common)
    ends = [max(pd - op, 0) for pd, op in zip(g.pad, g.output_pad)]
    zeros = [max(op - pd, 0) for pd, op in zip(g.pad, g.output_pad)]
    # with symbolic sizes, the shape of each tensor on the way (onnx's inference cannot add to a size)
    shape = None
    if b.dynamic:
        channels, *spatial = b.out_shape
        shape = [channels, *(n - count for n, count in zip(spatial, zeros))]
    y = b.op("ConvTranspose", [x, ctx.weight("weight")], f"{ctx.path}:scatter", pads=list(g.pad) + ends,
             shape=shape, **common)
    for axis, count in enumerate(zeros, start=2):
        if count:
            # rows no input reaches, built as zeros and joined: onnxruntime's optimiser folds a zero
            # Pad into a following MaxPool's padding, where it would count as minus infinity
            where = f"{ctx.path}:zeros{axis}"
            row_shape = block_shape = None
            if shape is not None:
                row_shape, block_shape = list(shape), list(shape)
                row_shape[axis - 1], block_shape[axis - 1] = 1, count
                shape[axis - 1] = shape[axis - 1] + count
            row = b.op("Slice", [y, b.ints(f"{where}:start", [0]), b.ints(f"{where}:end", [1]),
                                 b.ints(f"{where}:axis", [axis])], f"{where}:row", shape=row_shape)
            row = b.op("Mul", [row, b.constant(f"{where}:zero", 0.0)], f"{where}:zero_row", shape=row_shape)
            expand = [1] * (2 + g.rank)
            expand[axis] = count
            block = b.op("Expand", [row, b.ints(f"{where}:shape", expand)], where, shape=block_shape)
            y = b.op("Concat", [y, block], f"{where}:joined", shape=shape, axis=axis)
    if not p.bias:
        return b.op("Identity", [y], ctx.path)
    bias = b.op("Reshape", [ctx.weight("bias"), b.ints(f"{ctx.path}:per_channel", [g.out_channels] + [1] * g.rank)],
                f"{ctx.path}:bias_view")
    return b.op("Add", [y, bias], ctx.path)


@lowers("upsample")
def lower_upsample(ctx: Context, x: str) -> str:
    p, b = ctx.node.params, ctx.builder
    spatial = ctx.node.out_shape[1:]
    to_size = p.size is not None or ctx.node.size_from is not None
    if ctx.node.size_from is not None and b.dynamic:
        # to another value's size, which follows the input's: read from its tensor at run time
        # (with fixed sizes it is the layer's output size, lowered as a fixed size below, so
        # that every helper tensor has a known length)
        like = ctx.values[ctx.node.size_from]
        sizes = onnx_dynamic.spatial_sizes(b, like, len(spatial), f"{ctx.path}:like")
        if p.mode == "nearest":
            return onnx_dynamic.nearest_to_size(ctx, x, sizes, b.shapes[like][1:])
        return resize_to(ctx, x, sizes, resize_attributes(p))
    if b.dynamic and p.mode == "nearest" and to_size:
        return onnx_dynamic.nearest_to_size(ctx, x)
    if p.mode == "nearest" and to_size:
        # PyTorch's nearest to a size takes source index floor(dst * (in / out)) in float32;
        # Resize divides by out / in instead and can land one pixel off: gather the indices
        for axis, (n, o) in enumerate(zip(ctx.node.in_shape[1:], spatial), start=2):
            if n == o:
                continue
            scale = np.float32(n) / np.float32(o)
            index = np.minimum(np.floor(np.arange(o, dtype=np.float32) * scale), n - 1).astype(np.int64)
            x = b.op("Gather", [x, b.ints(f"{ctx.path}:index{axis}", index)], f"{ctx.path}:axis{axis}", axis=axis)
        return b.op("Identity", [x], ctx.path)
    attributes = resize_attributes(p)
    if b.dynamic and not to_size:
        # by the factor, as PyTorch's scale_factor: out = n * factor for any n
        factors = [float(f) for f in ctx.node.params.scale] if isinstance(p.scale, tuple) else [float(p.scale)] * len(spatial)
        if b.opset >= 18:
            return b.op("Resize", [x, "", b.constant(f"{ctx.path}:scales", factors)], ctx.path,
                        axes=list(range(2, 2 + len(spatial))), **attributes)
        return b.op("Resize", [x, "", b.constant(f"{ctx.path}:scales", [1.0, 1.0, *factors])], ctx.path, **attributes)
    if b.dynamic or b.opset >= 18:
        return resize_to(ctx, x, b.ints(f"{ctx.path}:sizes", spatial), attributes)
    scales = [1.0, 1.0] + [o / n for n, o in zip(ctx.node.in_shape[1:], spatial)]
    return b.op("Resize", [x, "", b.constant(f"{ctx.path}:scales", scales)], ctx.path, **attributes)


def resize_attributes(p) -> dict:
    """Resize's attributes for PyTorch's interpolation modes."""
    if p.mode == "nearest":
        # PyTorch's nearest by a factor: source index floor(dst / factor)
        return dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    # half_pixel, not pytorch_half_pixel: PyTorch maps an output of length 1 from the centre too
    transform = "align_corners" if p.align_corners else "half_pixel"
    return dict(mode="linear", coordinate_transformation_mode=transform)


def resize_to(ctx: Context, x: str, sizes: str, attributes: dict) -> str:
    """Resize to the spatial `sizes` (an int64 tensor): from opset 18 for the spatial axes alone,
    before it with the batch and channels read at run time, so the batch dimension stays symbolic."""
    b, rank = ctx.builder, len(ctx.node.out_shape) - 1
    if b.opset >= 18:
        return b.op("Resize", [x, "", "", sizes], ctx.path, axes=list(range(2, 2 + rank)), **attributes)
    sizes = b.op("Concat", [b.op("Shape", [x], f"{ctx.path}:leading", start=0, end=2), sizes],
                 f"{ctx.path}:all_sizes", axis=0)
    return b.op("Resize", [x, "", "", sizes], ctx.path, **attributes)


# ---------------------------------------------------------------- pooling

@lowers("maxpool", "avgpool")
def lower_pool(ctx: Context, x: str) -> str:
    p, b = ctx.node.params, ctx.builder
    is_max = p.kind == "maxpool"
    g = pool_geometry(p.kind, p, ctx.node.in_shape)
    if g.mode == "global":
        n = math.prod(ctx.node.in_shape[1:])
        # with symbolic sizes the count is not known when the graph is built: onnxruntime's own sum
        if is_max or n <= NAIVE_SUM_LENGTH or b.dynamic:
            return b.op("GlobalMaxPool" if is_max else "GlobalAveragePool", [x], ctx.path)
        flat = b.op("Reshape", [x, b.ints(f"{ctx.path}:flat_shape", [0, 0, -1])], f"{ctx.path}:flat")
        mean = b.mean_last(flat, n, f"{ctx.path}:mean")
        return b.op("Reshape", [mean, b.ints(f"{ctx.path}:shape", [0, *ctx.node.out_shape])], ctx.path)
    if g.mode == "adaptive":
        if b.dynamic:
            return onnx_dynamic.adaptive_pool(ctx, x, is_max)
        return adaptive_pool(ctx, x, is_max)
    if b.dynamic:
        # onnxruntime's ceil mode drops a last window starting in the end padding, as PyTorch does
        attributes = dict(kernel_shape=list(g.kernel), strides=list(g.stride), pads=list(g.pad) * 2,
                          ceil_mode=int(p.ceil))
        if is_max:
            return b.op("MaxPool", [x], ctx.path, dilations=list(g.dilation), **attributes)
        return b.op("AveragePool", [x], ctx.path, count_include_pad=int(p.count_pad), **attributes)
    sizes, outs = ctx.node.in_shape[1:], ctx.node.out_shape[1:]
    # ceil mode as end padding: ONNX's ceil rule keeps a last window starting in the padding that
    # PyTorch drops, so the floor formula is given just enough padding to make PyTorch's count
    ends = [max(pd, (o - 1) * st + d * (k - 1) + 1 - n - pd)
            for n, o, k, st, pd, d in zip(sizes, outs, g.kernel, g.stride, g.pad, g.dilation)]
    rank = len(sizes)
    explicit = any(e >= k or pd >= k for e, pd, k in zip(ends, g.pad, g.kernel))
    if explicit:
        # onnxruntime wants pads smaller than the kernel: pad with a Pad node instead (-inf for a
        # max, zeros for a sum divided by PyTorch's counts below)
        value = b.constant(f"{ctx.path}:pad_value", -np.inf if is_max else 0.0)
        full = [0, 0, *g.pad, 0, 0, *ends]
        x = b.op("Pad", [x, b.ints(f"{ctx.path}:pads", full), value], f"{ctx.path}:padded")
        pads = [0] * (2 * rank)
    else:
        pads = list(g.pad) + ends
    attributes = dict(kernel_shape=list(g.kernel), strides=list(g.stride), pads=pads, ceil_mode=0)
    if is_max:
        return b.op("MaxPool", [x], ctx.path, dilations=list(g.dilation), **attributes)
    beyond = any(e > pd for e, pd in zip(ends, g.pad))
    if not explicit and not (p.count_pad and beyond):
        return b.op("AveragePool", [x], ctx.path, count_include_pad=int(p.count_pad), **attributes)
    # sum each window, then divide by what PyTorch counts: the padding up to `pad` (not past it)
    # with count_pad, the input alone without
    window = math.prod(g.kernel)
    mean = b.op("AveragePool", [x], f"{ctx.path}:mean", count_include_pad=1, **attributes)
    total = b.op("Mul", [mean, b.constant(f"{ctx.path}:window", float(window))], f"{ctx.path}:sum")
    counts = np.ones((), np.float32)
    for n, o, k, st, pd in zip(sizes, outs, g.kernel, g.stride, g.pad):
        starts = np.arange(o) * st - pd
        ends_ = np.minimum(starts + k, n + pd)
        if not p.count_pad:
            ends_, starts = np.minimum(ends_, n), np.maximum(starts, 0)
        counts = np.multiply.outer(counts, ends_ - starts)
    return b.op("Div", [total, b.constant(f"{ctx.path}:counts", counts[None])], ctx.path)


def adaptive_pool(ctx: Context, x: str, is_max: bool) -> str:
    """Adaptive pooling: a plain pool where the bins tile evenly, else per-bin slices, axis by axis
    (a max or mean over a rectangle is the max or mean over its rows of those over its columns)."""
    b = ctx.builder
    sizes, outs = ctx.node.in_shape[1:], ctx.node.out_shape[1:]
    if all(n % o == 0 for n, o in zip(sizes, outs)):
        kernel = [n // o for n, o in zip(sizes, outs)]
        op = "MaxPool" if is_max else "AveragePool"
        extra = {} if is_max else {"count_include_pad": 0}
        return b.op(op, [x], ctx.path, kernel_shape=kernel, strides=kernel, pads=[0] * 2 * len(kernel), **extra)
    reduce = "ReduceMax" if is_max else "ReduceMean"
    for axis, (n, o) in enumerate(zip(sizes, outs), start=2):
        if n == o:
            continue
        parts = []
        for i, (start, end) in enumerate(adaptive_bins(n, o)):
            where = f"{ctx.path}:axis{axis}_bin{i}"
            piece = b.op("Slice", [x, b.ints(f"{where}:starts", [start]), b.ints(f"{where}:ends", [end]),
                                   b.ints(f"{where}:axes", [axis])], where)
            parts.append(b.reduce(reduce, piece, [axis], f"{where}:reduced"))
        x = b.op("Concat", parts, f"{ctx.path}:axis{axis}", axis=axis)
    return b.op("Identity", [x], ctx.path)


# ---------------------------------------------------------------- normalisation

def scale_and_shift(ctx: Context) -> tuple[str, str]:
    """A normalisation's per-channel scale and shift: its weights when affine, else ones and zeros."""
    if ctx.node.params.affine:
        return ctx.weight("weight"), ctx.weight("bias")
    c, b = ctx.node.in_shape[0], ctx.builder
    return b.constant(f"{ctx.path}:scale", np.ones(c)), b.constant(f"{ctx.path}:shift", np.zeros(c))


@lowers("bn")
def lower_bn(ctx: Context, x: str) -> str:
    """BatchNormalization by the layer's running statistics, as PyTorch normalises in eval."""
    scale, shift = scale_and_shift(ctx)
    return ctx.builder.op("BatchNormalization", [x, scale, shift, ctx.weight("running_mean"),
                                                 ctx.weight("running_var")], ctx.path, epsilon=ctx.node.params.eps)


@lowers("instancenorm")
def lower_instancenorm(ctx: Context, x: str) -> str:
    """With tracked statistics PyTorch normalises by them in eval: BatchNormalization. Otherwise each
    channel of each sample by its own statistics: InstanceNormalization, or over a (N, C, positions)
    view with two-level sums past NAIVE_SUM_LENGTH known positions (as group norm), then scaled and
    shifted."""
    p, b, shape = ctx.node.params, ctx.builder, ctx.node.in_shape
    if p.track_running_stats:
        return lower_bn(ctx, x)
    n = math.prod(shape[1:])
    if n <= NAIVE_SUM_LENGTH or b.dynamic:
        scale, shift = scale_and_shift(ctx)
        return b.op("InstanceNormalization", [x, scale, shift], ctx.path, epsilon=p.eps)
    rows = b.op("Reshape", [x, b.ints(f"{ctx.path}:rows_shape", [0, shape[0], -1])], f"{ctx.path}:rows")
    return scale_per_channel(ctx, unview(ctx, normalise_rows(ctx, rows, shape[0], n, p.eps), x, "unrows"))


def fold_batch_norm(conv: Context, bn: LayerNode, weights) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights with the following batch norm folded in, for inference.

    scale = gamma / sqrt(var + eps);  W' = W * scale (per output channel);  b' = (b - mean) * scale + beta
    """
    c = bn.in_shape[0]
    key = bn.path
    gamma = weights[f"{key}.weight"] if bn.params.affine else np.ones(c, np.float32)
    beta = weights[f"{key}.bias"] if bn.params.affine else np.zeros(c, np.float32)
    mean, var = weights[f"{key}.running_mean"], weights[f"{key}.running_var"]
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + bn.params.eps)
    weight = weights.pop(f"{conv.path}.weight").astype(np.float64)
    bias = weights.get(f"{conv.path}.bias", np.zeros(c)).astype(np.float64) if conv.node.params.bias else np.zeros(c)
    folded_weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    folded_bias = (bias - mean) * scale + beta
    return folded_weight.astype(np.float32), folded_bias.astype(np.float32)


def channels_last(rank: int) -> tuple[list[int], list[int]]:
    """Permutations moving channels last and back, for (N, C, *spatial) with `rank` spatial axes."""
    forward = [0, *range(2, 2 + rank), 1]
    back = [0, 1 + rank, *range(1, 1 + rank)]
    return forward, back


@lowers("ln")
def lower_ln(ctx: Context, x: str) -> str:
    p, b = ctx.node.params, ctx.builder
    c, rank = ctx.node.in_shape[0], len(ctx.node.in_shape) - 1
    if p.last:
        c = ctx.node.in_shape[-1]
    scale = ctx.weight("weight") if p.affine else b.constant(f"{ctx.path}:scale", np.ones(c))
    inputs = [scale] + ([ctx.weight("bias")] if p.affine else [])
    if rank == 0 or p.last:
        if b.dynamic and not p.affine:
            inputs = [onnx_dynamic.ones_like_last(b, x, f"{ctx.path}:scale")]
        return b.op("LayerNormalization", [x, *inputs], ctx.path, axis=-1, epsilon=p.eps)
    forward, back = channels_last(rank)
    y = b.op("Transpose", [x], f"{ctx.path}:channels_last", perm=forward)
    if b.dynamic and not p.affine:
        inputs = [onnx_dynamic.ones_like_last(b, y, f"{ctx.path}:scale")]
    y = b.op("LayerNormalization", [y, *inputs], f"{ctx.path}:normalised", axis=-1, epsilon=p.eps)
    return b.op("Transpose", [y], ctx.path, perm=back)


def normalise_rows(ctx: Context, x: str, rows: int, n: int, eps: float) -> str:
    """Each row of an (N, rows, n) view to mean 0 and variance 1: InstanceNormalization, or past
    NAIVE_SUM_LENGTH values (known ones: not with symbolic sizes) two passes with two-level sums,
    (x - mean) / sqrt(mean((x - mean)^2) + eps)."""
    b, path = ctx.builder, ctx.path
    if n <= NAIVE_SUM_LENGTH or b.dynamic:
        ones, zeros = b.constant(f"{path}:ones", np.ones(rows)), b.constant(f"{path}:zeros", np.zeros(rows))
        return b.op("InstanceNormalization", [x, ones, zeros], f"{path}:normalised", epsilon=eps)
    mean = b.mean_last(x, n, f"{path}:mean")
    centred = b.op("Sub", [x, mean], f"{path}:centred")
    square = b.op("Mul", [centred, centred], f"{path}:square")
    variance = b.mean_last(square, n, f"{path}:variance")
    shifted = b.op("Add", [variance, b.constant(f"{path}:eps", eps)], f"{path}:shifted")
    return b.op("Div", [centred, b.op("Sqrt", [shifted], f"{path}:std")], f"{path}:normalised")


def unview(ctx: Context, y: str, x: str, name: str) -> str:
    """A view of the layer's input `x` back in its shape."""
    b = ctx.builder
    if b.dynamic:
        return onnx_dynamic.reshape_like(b, y, x, f"{ctx.path}:{name}")
    return b.op("Reshape", [y, b.ints(f"{ctx.path}:shape", [0, *ctx.node.in_shape])], f"{ctx.path}:{name}")


def scale_per_channel(ctx: Context, y: str) -> str:
    """y * weight + bias, per channel of the layer's input, when the layer is affine."""
    b, shape = ctx.builder, ctx.node.in_shape
    if not ctx.node.params.affine:
        return b.op("Identity", [y], ctx.path)
    per_channel = b.ints(f"{ctx.path}:per_channel", [shape[0]] + [1] * (len(shape) - 1))
    weight = b.op("Reshape", [ctx.weight("weight"), per_channel], f"{ctx.path}:weight_view")
    bias = b.op("Reshape", [ctx.weight("bias"), per_channel], f"{ctx.path}:bias_view")
    y = b.op("Mul", [y, weight], f"{ctx.path}:scaled")
    return b.op("Add", [y, bias], ctx.path)


@lowers("groupnorm")
def lower_groupnorm(ctx: Context, x: str) -> str:
    """Normalise each group (over a (N, G, rest) view), then scale and shift per channel, as
    PyTorch defines group norm."""
    p, b = ctx.node.params, ctx.builder
    grouped = b.op("Reshape", [x, b.ints(f"{ctx.path}:grouped_shape", [0, p.groups, -1])], f"{ctx.path}:grouped",
                   shape=onnx_dynamic.grouped_shape(b, x, p.groups) if b.dynamic else None)
    y = normalise_rows(ctx, grouped, p.groups, math.prod(ctx.node.in_shape) // p.groups, p.eps)
    return scale_per_channel(ctx, unview(ctx, y, x, "ungrouped"))


@lowers("lrn")
def lower_lrn(ctx: Context, x: str) -> str:
    """ONNX's LRN for 2D maps and odd sizes. Otherwise the sum is written out: onnxruntime's LRN
    takes 4D input only, and for even sizes ONNX's window sits one channel off PyTorch's (which
    spans size//2 channels before and (size-1)//2 after).

    y = x / (k + alpha * mean of x^2 over the window)^beta
    """
    p, b = ctx.node.params, ctx.builder
    c, *spatial = ctx.node.in_shape
    if p.size % 2 and len(spatial) == 2:
        return b.op("LRN", [x], ctx.path, size=p.size, alpha=p.alpha, beta=p.beta, bias=p.k)
    path = ctx.path
    square = b.op("Mul", [x, x], f"{path}:square")
    # (N, 1, C, positions): a 2D pool slides the window along the channels
    lifted_shape = (onnx_dynamic.shape_with_channels(b, x, [0, 1], [-1], f"{path}:lifted_shape") if b.dynamic
                    else b.ints(f"{path}:lifted_shape", [0, 1, c, -1]))
    lifted_dims = onnx_dynamic.split_shape(b, x, 1) if b.dynamic else None
    lifted = b.op("Reshape", [square, lifted_shape], f"{path}:lifted", shape=lifted_dims)
    before, after = p.size // 2, (p.size - 1) // 2
    mean = b.op("AveragePool", [lifted], f"{path}:window_mean", shape=lifted_dims, kernel_shape=[p.size, 1],
                strides=[1, 1], pads=[before, 0, after, 0], count_include_pad=1)
    if b.dynamic:
        mean = onnx_dynamic.reshape_like(b, mean, x, f"{path}:mean")
    else:
        mean = b.op("Reshape", [mean, b.ints(f"{path}:shape", [0, c, *spatial])], f"{path}:mean")
    scaled = b.op("Mul", [mean, b.constant(f"{path}:alpha", p.alpha)], f"{path}:scaled")
    shifted = b.op("Add", [scaled, b.constant(f"{path}:k", p.k)], f"{path}:shifted")
    denominator = b.op("Pow", [shifted, b.constant(f"{path}:beta", p.beta)], f"{path}:denominator")
    return b.op("Div", [x, denominator], path)


# ---------------------------------------------------------------- activations

SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "hardswish": "HardSwish"}


@lowers(*SIMPLE)
def lower_simple(ctx: Context, x: str) -> str:
    return ctx.builder.op(SIMPLE[ctx.node.kind], [x], ctx.path)


@lowers("relu6")
def lower_relu6(ctx: Context, x: str) -> str:
    b = ctx.builder
    return b.op("Clip", [x, b.constant(f"{ctx.path}:min", 0.0), b.constant(f"{ctx.path}:max", 6.0)], ctx.path)


@lowers("hardsigmoid")
def lower_hardsigmoid(ctx: Context, x: str) -> str:
    # PyTorch's relu6(x + 3) / 6
    return ctx.builder.op("HardSigmoid", [x], ctx.path, alpha=1 / 6, beta=0.5)


@lowers("silu")
def lower_silu(ctx: Context, x: str) -> str:
    gate = ctx.builder.op("Sigmoid", [x], f"{ctx.path}:gate")
    return ctx.builder.op("Mul", [x, gate], ctx.path)


@lowers("leaky_relu")
def lower_leaky_relu(ctx: Context, x: str) -> str:
    return ctx.builder.op("LeakyRelu", [x], ctx.path, alpha=ctx.node.params.slope)


@lowers("elu")
def lower_elu(ctx: Context, x: str) -> str:
    return ctx.builder.op("Elu", [x], ctx.path, alpha=ctx.node.params.alpha)


@lowers("gelu")
def lower_gelu(ctx: Context, x: str) -> str:
    """`Gelu` from opset 20; before it, 0.5 x (1 + erf(x / sqrt 2)) or the tanh form."""
    b, approximate = ctx.builder, ctx.node.params.approximate
    if b.opset >= 20:
        return b.op("Gelu", [x], ctx.path, approximate=approximate)
    path = ctx.path
    if approximate == "tanh":
        cube = b.op("Pow", [x, b.constant(f"{path}:three", 3.0)], f"{path}:cube")
        inner = b.op("Add", [x, b.op("Mul", [cube, b.constant(f"{path}:c", 0.044715)], f"{path}:scaled_cube")],
                     f"{path}:inner")
        inner = b.op("Mul", [inner, b.constant(f"{path}:sqrt_2_over_pi", math.sqrt(2 / math.pi))], f"{path}:arg")
        core = b.op("Tanh", [inner], f"{path}:core")
    else:
        core = b.op("Erf", [b.op("Mul", [x, b.constant(f"{path}:rsqrt2", 1 / math.sqrt(2))], f"{path}:arg")],
                    f"{path}:core")
    one_plus = b.op("Add", [core, b.constant(f"{path}:one", 1.0)], f"{path}:one_plus")
    half_x = b.op("Mul", [x, b.constant(f"{path}:half", 0.5)], f"{path}:half_x")
    return b.op("Mul", [half_x, one_plus], path)


@lowers("softmax")
def lower_softmax(ctx: Context, x: str) -> str:
    return ctx.builder.op("Softmax", [x], ctx.path, axis=1)


@lowers("mul")
def lower_mul(ctx: Context, x: str) -> str:
    b = ctx.builder
    return b.op("Mul", [x, b.constant(f"{ctx.path}:factor", ctx.node.params.factor)], ctx.path)


@lowers("dropout", "dropout2d", "identity")
def lower_pass_through(ctx: Context, x: str) -> str:
    # identity at inference: no node at all
    return x


# ---------------------------------------------------------------- shape and dense

@lowers("flatten")
def lower_flatten(ctx: Context, x: str) -> str:
    return ctx.builder.op("Flatten", [x], ctx.path, axis=1)


@lowers("reshape")
def lower_reshape(ctx: Context, x: str) -> str:
    b = ctx.builder
    # 0 copies the (symbolic) batch dimension; with symbolic sizes, the -1 the spec wrote is kept
    target = ctx.node.params.shape if b.dynamic else ctx.node.out_shape
    target = target if isinstance(target, tuple) else (target,)
    return b.op("Reshape", [x, b.ints(f"{ctx.path}:shape", [0, *target])], ctx.path)


@lowers("channel_shuffle")
def lower_channel_shuffle(ctx: Context, x: str) -> str:
    b, g = ctx.builder, ctx.node.params.groups
    c, *spatial = ctx.node.in_shape
    if b.dynamic:
        # the channels (which may follow the input's size) read at run time, the positions in one axis
        spatial = [-1]
        groups = onnx_dynamic.shape_with_channels(b, x, [0, g], [-1], f"{ctx.path}:split_shape", divide=g)
    else:
        groups = b.ints(f"{ctx.path}:split", [0, g, c // g, *spatial])
    split_shape = onnx_dynamic.split_shape(b, x, g) if b.dynamic else None
    split = b.op("Reshape", [x, groups], f"{ctx.path}:split", shape=split_shape)
    perm = [0, 2, 1, *range(3, 3 + len(spatial))]
    swapped = b.op("Transpose", [split], f"{ctx.path}:swapped", perm=perm,
                   shape=(split_shape[1], split_shape[0], split_shape[2]) if b.dynamic else None)
    if b.dynamic:
        return onnx_dynamic.reshape_like(b, swapped, x, ctx.path)
    return b.op("Reshape", [swapped, b.ints(f"{ctx.path}:merged", [0, c, *spatial])], ctx.path)


@lowers("chunk")
def lower_chunk(ctx: Context, x: str) -> str:
    b, p = ctx.builder, ctx.node.params
    if b.dynamic:
        return onnx_dynamic.chunk(ctx, x)
    size = ctx.node.out_shape[0]
    return b.op("Slice", [x, b.ints(f"{ctx.path}:starts", [p.index * size]),
                          b.ints(f"{ctx.path}:ends", [(p.index + 1) * size]), b.ints(f"{ctx.path}:axes", [1])],
                ctx.path)


#: Slice's end for "to the last index": PyTorch's and ONNX's slices clip an end past the axis
TO_THE_END = 2**63 - 1


@lowers("slice")
def lower_slice(ctx: Context, x: str) -> str:
    """x[:, start:end]: Slice takes Python's indices as they are (negative from the end, clipped)."""
    b, p = ctx.builder, ctx.node.params
    end = TO_THE_END if p.end is None else p.end
    return b.op("Slice", [x, b.ints(f"{ctx.path}:starts", [p.start]), b.ints(f"{ctx.path}:ends", [end]),
                          b.ints(f"{ctx.path}:axes", [1])], ctx.path)


@lowers("split")
def lower_split(ctx: Context, x: str) -> str:
    """Piece `index` of torch.split(x, sizes, dim=1), a Slice of its channels: the end of the
    last of equal pieces clipped, as PyTorch makes it smaller, at any number of channels."""
    b, p = ctx.builder, ctx.node.params
    if isinstance(p.sizes, tuple):
        start = sum(p.sizes[:p.index])
        end = start + p.sizes[p.index]
    else:
        start, end = p.index * p.sizes, (p.index + 1) * p.sizes
    return b.op("Slice", [x, b.ints(f"{ctx.path}:starts", [start]), b.ints(f"{ctx.path}:ends", [end]),
                          b.ints(f"{ctx.path}:axes", [1])], ctx.path)


@lowers("linear")
def lower_linear(ctx: Context, x: str) -> str:
    """Gemm on a flat input; over the last dimension of a larger one, MatMul by the transposed
    weight (the initializer keeps PyTorch's (out, in) layout and name) and Add."""
    b, p = ctx.builder, ctx.node.params
    if len(ctx.node.in_shape) == 1:
        inputs = [x, ctx.weight("weight")] + ([ctx.weight("bias")] if p.bias else [])
        return b.op("Gemm", inputs, ctx.path, transB=1)
    weight_t = b.op("Transpose", [ctx.weight("weight")], f"{ctx.path}:weight_t", perm=[1, 0])
    if not p.bias:
        return b.op("MatMul", [x, weight_t], ctx.path)
    y = b.op("MatMul", [x, weight_t], f"{ctx.path}:matmul")
    return b.op("Add", [y, ctx.weight("bias")], ctx.path)


@lowers("channels_last", "channels_first")
def lower_permute(ctx: Context, x: str) -> str:
    rank = len(ctx.node.in_shape)
    if ctx.node.kind == "channels_last":
        perm = [0, *range(2, rank + 1), 1]
    else:
        perm = [0, rank, *range(1, rank)]
    return ctx.builder.op("Transpose", [x], ctx.path, perm=perm)


@lowers("layerscale")
def lower_layerscale(ctx: Context, x: str) -> str:
    return ctx.builder.op("Mul", [ctx.weight(""), x], ctx.path)


# ---------------------------------------------------------------- the graph


@dataclass
class Lowerer:
    builder: GraphBuilder
    weights: dict[str, np.ndarray]
    fold_bn: bool
    input_shape: tuple[int, ...]
    #: the tensor of each named value, by key (a key names its scope: `layer1:c2`)
    values: dict[str, str] = field(default_factory=dict)
    #: the convs folded with the normalisation after them (see `foldable_convs`)
    foldable: frozenset[str] = frozenset()
    #: with symbolic sizes, the output shape of every layer and merge in the order they run
    #: (`onnx_dims.layer_shapes`); the layers' own `out_shape` otherwise
    symbolic_shapes: list | None = None
    runs: int = 0

    def record(self, x: str, item, runs: int = 1) -> None:
        """The shape of the tensor a layer or merge (or a conv with its normalisation, two runs) made."""
        self.runs += runs
        self.builder.shapes[x] = (item.out_shape if self.symbolic_shapes is None
                                  else tuple(self.symbolic_shapes[self.runs - 1]))

    def sequence(self, items, x: str) -> str:
        items = opened(items, scopes=True)
        index = 0
        while index < len(items):
            item = items[index]
            if item.node == "seq":
                # a named value: its tensor's name is the value
                if item.source is not None:
                    x = self.values[item.source]
                else:
                    self.values[item.bind] = x
                index += 1
                continue
            if item.node == "merge":
                x = self.merge(item, x)
                self.record(x, item)
            else:
                following = items[index + 1] if index + 1 < len(items) else None
                if self.symbolic_shapes is not None:
                    self.builder.out_shape = tuple(self.symbolic_shapes[self.runs])
                if self.fold_bn and item.path in self.foldable:
                    ctx = Context(self.builder, self.weights, item)
                    x = lower_conv(ctx, x, folded=lambda ctx=ctx, bn=following: fold_batch_norm(ctx, bn, self.weights))
                    index += 1
                    self.record(x, following, runs=2)
                else:
                    x = LOWERINGS[item.kind](Context(self.builder, self.weights, item, self.values), x)
                    self.record(x, item)
            index += 1
        return x

    def merge(self, merge: MergeNode, x: str) -> str:
        b = self.builder
        outputs = [self.sequence(branch.items, x) for branch in merge.branches]
        name = merge.path or "merge"
        if merge.op == "concat":
            if merge.crop and b.dynamic:
                # the merge's own shape is the next one recorded, after its branches'
                outputs = onnx_dynamic.crop(b, outputs, self.symbolic_shapes[self.runs], f"{name}")
            elif merge.crop:
                outputs = self.crop(outputs, merge)
            return b.op("Concat", outputs, f"{name}:concat", axis=1)
        op = "Add" if merge.op == "add" else "Mul"
        result = outputs[0]
        for other in outputs[1:]:
            result = b.op(op, [result, other], f"{name}:{op.lower()}")
        return result

    def crop(self, outputs: list[str], merge: MergeNode) -> list[str]:
        """Centre-crop each branch to the smallest map: offset (size - smallest) // 2, per axis."""
        b = self.builder
        # every tensor but the graph's input has its shape recorded where it is made
        shapes = [b.shapes.get(name, self.input_shape) for name in outputs]
        target = merge.out_shape[1:]
        cropped = []
        for i, (name, shape) in enumerate(zip(outputs, shapes)):
            if tuple(shape[1:]) == tuple(target):
                cropped.append(name)
                continue
            starts = [(n - t) // 2 for n, t in zip(shape[1:], target)]
            where = f"{merge.path or 'merge'}:crop{i}"
            cropped.append(b.op("Slice", [name, b.ints(f"{where}:starts", starts),
                                          b.ints(f"{where}:ends", [s + t for s, t in zip(starts, target)]),
                                          b.ints(f"{where}:axes", list(range(2, 2 + len(target))))], where))
        return cropped


def foldable_convs(items) -> frozenset[str]:
    """The convs a normalisation by running statistics follows at every application: a module
    applied again (`use`) runs its layers more than once, and a conv is folded only where each
    run has the same normalisation after it."""
    followers: dict[str, set] = {}

    def visit(items) -> None:
        items = opened(items, scopes=True)
        for index, item in enumerate(items):
            if item.node == "merge":
                for branch in item.branches:
                    visit(branch.items)
            elif item.node == "layer" and isinstance(item.params, ConvParams):
                following = items[index + 1] if index + 1 < len(items) else None
                normalised = following is not None and following.node == "layer" and \
                    REGISTRY[following.kind].traits.running_statistics
                followers.setdefault(item.path, set()).add(following.path if normalised else None)

    visit(items)
    return frozenset(path for path, after in followers.items() if None not in after and len(after) == 1)


def to_onnx(network: "CheckedGraph", weights: dict | None = None, opset: int = DEFAULT_OPSET, fold_bn: bool = True,
            batch: int | None = None, seed: int = 0, memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
            budget_option: str = "memory_budget", dynamic: str = "batch") -> onnx.ModelProto:
    """The network as an ONNX model.

    `weights` maps state_dict keys to arrays (numpy or torch), checked and converted by
    `prepare_weights`; without it, a seeded random initialisation with PyTorch's default
    distributions. The batch dimension is symbolic (`N`) unless `batch` fixes it; with
    `dynamic="hw"` the spatial sizes are too (`H`, `W`; `D` and `L` in 3D and 1D), once the
    input-size analysis (`cnnspec.analysis.sizes`) has found the network valid for other sizes
    (E220 at the layer that fixes them otherwise), and the sizes it found valid are stored in
    the metadata under `cnnspec.input_sizes` (JSON) and `cnnspec.input_constraint`. `fold_bn` folds
    each normalisation by running statistics (batch norm) that follows a conv into it. `memory_budget` (bytes of fp32 weights and
    buffers; the model holds about two copies of them, a written file three) refuses a larger
    network with E303 before anything is allocated; `None` turns it off.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is outside what cnnspec emits ({MIN_OPSET} to {MAX_OPSET})")
    if dynamic not in ("batch", "hw"):
        raise ValueError(f"`dynamic` is `batch` or `hw`, not {dynamic!r}")
    sizes = dynamic_sizes(network) if dynamic == "hw" else None
    if weights is None:
        check_budget(network, memory_budget, budget_option)
        # drawn as the lowering takes them: never all of them beside the initializers
        weights = DrawnWeights(network, seed)
    else:
        weights = prepare_weights(network, weights, memory_budget, budget_option)
    graph = network.graph
    # the model first, its initializers made in place: make_graph and make_model would copy them twice
    model = helper.make_model(helper.make_graph([], graph.name, [], []), opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSIONS[opset], producer_name="cnnspec",
                              doc_string=f"{graph.name} from {network.path}")
    builder = GraphBuilder(opset, dynamic=sizes is not None, initializers=model.graph.initializer)
    # declared outputs keep their names: the graph's tensors (the input too) are named around them
    builder.names.update(name for name, _, _, _ in graph.outputs)
    input_name = builder.fresh(graph.input_name)
    lowerer = Lowerer(builder, weights, fold_bn, network.input_shape,
                      foldable=foldable_convs(graph.body.items) if fold_bn else frozenset())
    builder.shapes[input_name] = network.input_shape
    if sizes is not None:
        input_shape, lowerer.symbolic_shapes = layer_shapes(network)
        builder.shapes[input_name] = tuple(input_shape)
    # one graph input per declared input, named as declared; the later ones are values by key
    later_inputs = [(builder.fresh(name), key, shape) for name, key, shape in graph.inputs[1:]]
    for tensor, key, shape in later_inputs:
        lowerer.values[key] = tensor
        builder.shapes[tensor] = shape
    try:
        output = lowerer.sequence(graph.body.items, input_name)
    except ExportError as error:
        dynamic_problem = error.code == Code.SIZE_CANNOT_VARY
        raise SpecError([Diagnostic(code=error.code, message=str(error), span=error.node.span,
                                    label="needs a fixed size" if dynamic_problem else "cannot be exported at this opset",
                                    help="export with `--dynamic batch`" if dynamic_problem
                                    else f"export with a newer opset (up to {MAX_OPSET})")],
                        network.sources) from None
    dim = batch if batch is not None else "N"
    if graph.outputs:
        # one graph output per declared output, in order, each an Identity of its value's tensor
        for name, key, _, _ in graph.outputs:
            builder.nodes.append(helper.make_node("Identity", [lowerer.values[key]], [name], name=name))
            builder.shapes[name] = builder.shapes[lowerer.values[key]]
        named = [name for name, _, _, _ in graph.outputs]
    else:
        shape = builder.shapes[output]
        named = [name_output(builder, output, input_name)]
        builder.shapes[named[0]] = shape
    if sizes is None:
        full = {name: [dim, *shape] for name, shape in builder.shapes.items()}
    else:
        full = named_dims(builder.shapes, builder.full_shapes, dim, AXIS_NAMES[len(network.input_shape) - 1])
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                            full.get(input_name, [dim, *network.input_shape]))]
    inputs += [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, [dim, *shape]) for tensor, _, shape in later_inputs]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, full[name]) for name in named]
    model.graph.node.extend(builder.nodes)
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    declare_shapes(model, full)
    if sizes is not None:
        # two keys of cnnspec.backends.metadata.KEYS, which `deploy.finish` keeps
        helper.set_model_props(model, {"cnnspec.input_constraint": sizes.describe(),
                                       "cnnspec.input_sizes": json.dumps(sizes.as_dict(), sort_keys=True)})
    return model


def named_dims(shapes: dict[str, tuple], full_shapes: dict[str, tuple], batch,
               axis_names: tuple[str, ...]) -> dict[str, list]:
    """Full shapes (the batch first, for `shapes`) with every symbolic size named
    (`onnx_dims.DimNames`)."""
    namer = DimNames(axis_names)
    for shape in [*shapes.values(), *full_shapes.values()]:
        for d in shape:
            if not isinstance(d, int):
                namer.add(d)
    names = namer.names()

    def named(shape) -> list:
        return [d if isinstance(d, int) else names[id(d)] for d in shape]

    return {**{tensor: [batch, *named(shape)] for tensor, shape in shapes.items()},
            **{tensor: named(shape) for tensor, shape in full_shapes.items()}}


def name_output(builder: GraphBuilder, tensor: str, input_name: str) -> str:
    """Call the graph's result `output`: rename the node that makes it, or add an Identity."""
    if tensor != input_name:
        for node in reversed(builder.nodes):
            if tensor in node.output and all(tensor not in n.input for n in builder.nodes):
                node.output[list(node.output).index(tensor)] = "output"
                node.name = "output"
                builder.names.add("output")
                return "output"
    return builder.op("Identity", [tensor], "output")
