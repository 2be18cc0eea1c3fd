"""The ONNX forms of layers whose static form writes a size down, for exports whose spatial sizes
are symbolic (`to_onnx(dynamic="hw")`): sizes are read from the tensors at run time (`Shape`)
and the arithmetic on them is done in the graph, in int64 (its `Div` truncates, which is the
floor for the non-negative values here).
"""

from __future__ import annotations

import numpy as np

from cnnspec.backends.onnx_dims import product


def per_group(channels, groups: int):
    """The channels of one of `groups` groups, the channels an int or a `Dim`."""
    return channels // groups if isinstance(channels, int) else channels.map(lambda n: n // groups)


def grouped_shape(b, x: str, groups: int) -> tuple:
    """The per-sample shape of `x` viewed as (groups, the rest)."""
    channels, *spatial = b.shapes[x]
    return (groups, product(per_group(channels, groups), *spatial))


def split_shape(b, x: str, groups: int) -> tuple:
    """The per-sample shape of `x` viewed as (groups, channels per group, the positions)."""
    channels, *spatial = b.shapes[x]
    return (groups, per_group(channels, groups), product(*spatial))


def spatial_sizes(b, x: str, rank: int, name: str) -> str:
    """The spatial sizes of an (N, C, *spatial) tensor, as an int64 vector."""
    return b.op("Shape", [x], f"{name}:sizes", start=2, end=2 + rank)


def axis_size(b, x: str, axis: int, name: str) -> str:
    """The size of one axis, as an int64 vector of one element."""
    return b.op("Shape", [x], f"{name}:size{axis}", start=axis, end=axis + 1)


def shape_with_channels(b, x: str, before: list[int], after: list[int], name: str, divide: int = 1) -> str:
    """A target shape `before + [channels of x // divide] + after`, the channels read at run time."""
    channels = axis_size(b, x, 1, name)
    if divide != 1:
        channels = b.op("Div", [channels, b.ints(f"{name}:groups", [divide])], f"{name}:per_group")
    return b.op("Concat", [b.ints(f"{name}:before", before), channels, b.ints(f"{name}:after", after)], name, axis=0)


def chunk(ctx, x: str) -> str:
    """Slice `index` of `chunks` equal slices of the channels, their number read at run time."""
    b, p = ctx.builder, ctx.node.params
    size = b.op("Div", [axis_size(b, x, 1, ctx.path), b.ints(f"{ctx.path}:chunks", [p.chunks])], f"{ctx.path}:width")
    start = b.op("Mul", [size, b.ints(f"{ctx.path}:index", [p.index])], f"{ctx.path}:starts")
    end = b.op("Add", [start, size], f"{ctx.path}:ends")
    return b.op("Slice", [x, start, end, b.ints(f"{ctx.path}:axes", [1])], ctx.path)


def reshape_like(b, y: str, like: str, name: str) -> str:
    """`y` reshaped to the shape `like` has at run time."""
    return b.op("Reshape", [y, b.op("Shape", [like], f"{name}:like")], name)


def ones_like_last(b, x: str, name: str) -> str:
    """Ones as long as the last axis of `x` at run time (the scale of a layer norm without
    weights, over features whose number follows the input's size)."""
    from onnx import TensorProto, helper

    return b.op("ConstantOfShape", [b.op("Shape", [x], f"{name}:length", start=-1)], name,
                value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))


def crop(b, outputs: list[str], merged: tuple, name: str) -> list[str]:
    """Centre-crop every branch to the smallest size per axis: start (size - smallest) // 2.
    `merged`: the per-sample shape of the concat the branches go to."""
    rank = len(merged) - 1
    sizes = [spatial_sizes(b, x, rank, f"{name}:branch{i}") for i, x in enumerate(outputs)]
    target = sizes[0] if len(sizes) == 1 else b.op("Min", sizes, f"{name}:target")
    axes = b.ints(f"{name}:axes", list(range(2, 2 + rank)))
    two = b.ints(f"{name}:two", [2])
    cropped = []
    for i, (x, size) in enumerate(zip(outputs, sizes)):
        where = f"{name}:crop{i}"
        start = b.op("Div", [b.op("Sub", [size, target], f"{where}:excess"), two], f"{where}:starts")
        end = b.op("Add", [start, target], f"{where}:ends")
        cropped.append(b.op("Slice", [x, start, end, axes], where, shape=(b.shapes[x][0], *merged[1:])))
    return cropped


def adaptive_pool(ctx, x: str, is_max: bool) -> str:
    """PyTorch's adaptive bins [floor(i*n/o), ceil((i+1)*n/o)) with n read at run time: per axis,
    one slice per bin, reduced, then joined."""
    b = ctx.builder
    outs = ctx.node.out_shape[1:]
    reduce = "ReduceMax" if is_max else "ReduceMean"
    shape = list(b.shapes[x])
    for axis, o in enumerate(outs, start=2):
        where = f"{ctx.path}:axis{axis}"
        n = axis_size(b, x, axis, where)
        size = shape[axis - 1]
        # every bin's start and end at once: n*i // o and (n*(i+1) + o - 1) // o
        index = b.ints(f"{where}:index", np.arange(o))
        count = b.ints(f"{where}:count", [o])
        starts = b.op("Div", [b.op("Mul", [n, index], f"{where}:scaled"), count], f"{where}:starts")
        upper = b.op("Mul", [n, b.ints(f"{where}:next", np.arange(1, o + 1))], f"{where}:scaled_next")
        ends = b.op("Div", [b.op("Add", [upper, b.ints(f"{where}:round_up", [o - 1])], f"{where}:raised"), count],
                    f"{where}:ends")
        parts = []
        for i in range(o):
            pick = b.ints(f"{where}_bin{i}:pick", [i])
            start = b.op("Gather", [starts, pick], f"{where}_bin{i}:start")
            end = b.op("Gather", [ends, pick], f"{where}_bin{i}:end")
            shape[axis - 1] = bin_length(size, i, o)
            piece = b.op("Slice", [x, start, end, b.ints(f"{where}_bin{i}:axes", [axis])], f"{where}_bin{i}",
                         shape=shape)
            shape[axis - 1] = 1
            parts.append(b.reduce(reduce, piece, [axis], f"{where}_bin{i}:reduced", shape=shape))
        shape[axis - 1] = o
        x = parts[0] if o == 1 else b.op("Concat", parts, where, axis=axis, shape=shape)
    return b.op("Identity", [x], ctx.path)


def bin_length(n, i: int, bins: int):
    """The length of adaptive bin `i` of `bins` over n: ceil((i+1)*n/bins) - floor(i*n/bins)."""
    def length(n):
        return (n * (i + 1) + bins - 1) // bins - (n * i) // bins

    return length(n) if isinstance(n, int) else n.map(length)


def nearest_to_size(ctx, x: str, sizes: str | None = None, target: tuple = ()) -> str:
    """Nearest upsampling from a size read at run time, to the fixed output size or to the spatial
    `sizes` of another tensor (an int64 vector, read at run time too, whose per-sample sizes are
    `target`): PyTorch's source index floor(dst * (in / out)) in float32, gathered per axis."""
    b = ctx.builder
    shape = list(b.shapes[x])
    for axis, o in enumerate(ctx.node.out_shape[1:], start=2):
        where = f"{ctx.path}:axis{axis}"
        n = axis_size(b, x, axis, where)
        if sizes is None:
            out, dst = b.constant(f"{where}:out", [float(o)]), b.constant(f"{where}:dst", np.arange(o))
            length = o
        else:
            length = target[axis - 2]
            count = b.op("Gather", [sizes, b.ints(f"{where}:pick", axis - 2)], f"{where}:count")
            out = b.op("Cast", [count], f"{where}:out", to=1)
            steps = b.op("Range", [b.ints(f"{where}:zero", 0), count, b.ints(f"{where}:step", 1)], f"{where}:steps",
                         full_shape=(length,))
            dst = b.op("Cast", [steps], f"{where}:dst", full_shape=(length,), to=1)
        scale = b.op("Div", [b.op("Cast", [n], f"{where}:n", to=1), out], f"{where}:scale")
        source = b.op("Floor", [b.op("Mul", [dst, scale], f"{where}:at", full_shape=(length,))], f"{where}:floor",
                      full_shape=(length,))
        last = b.op("Sub", [n, b.ints(f"{where}:one", [1])], f"{where}:last")
        index = b.op("Min", [b.op("Cast", [source], f"{where}:index_any", full_shape=(length,), to=7), last],
                     f"{where}:index", full_shape=(length,))
        shape[axis - 1] = length
        x = b.op("Gather", [x, index], where, shape=shape, axis=axis)
    return b.op("Identity", [x], ctx.path)
