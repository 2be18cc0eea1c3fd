"""Measuring a built PyTorch module, independently of the checker's formulas: the receptive field
by gradient support, and the activation memory by the tensors each layer and merge returns.

Receptive field. With positive weights, max pools replaced by sums over the same windows, a
positive input, and every layer's and merge's output shifted and scaled into (0, 1] by constants (which keeps
ReLU6, hard sigmoid, tanh and sigmoid off their flat parts, and a normalisation's output
positive), an input position influences an output exactly when the gradient of that output with
respect to it is nonzero. The model runs in float64 and in eval mode (batch norm pointwise,
dropout off). The gradient of one output position (its channels weighted by random positive
factors, so that outputs summing to a constant, as softmax's do, do not cancel) gives, along each
input axis, the first and last input positions it depends on.

What it takes from the checker is only which tensor axes of a layer's output hold positions of
which input axis (`Field_.axis`: the channel axis moves with `channels_last`), to know what "one
position" means, and the size of the layer's period, to know which neighbours to measure.
"""

from __future__ import annotations

import itertools
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cnnspec
from cnnspec.backends import torch as backend
from cnnspec.layers import REGISTRY

# ---------------------------------------------------------------- the module under measurement


class WindowSum(nn.Module):
    """A max pool's windows summed instead (a max passes gradient to one position only): the same
    kernel, stride, padding, dilation and output size (ceil mode's last window included)."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        rank = x.dim() - 2
        pool = self.pool
        kernel, stride, pad, dilation = (_per_dim(getattr(pool, a), rank) for a in
                                         ("kernel_size", "stride", "padding", "dilation"))
        with torch.no_grad():
            size = pool(x.detach()).shape[2:]
        extra = [0] * (2 * rank)
        for axis in range(rank):
            extra[2 * (rank - 1 - axis) + 1] = dilation[axis] * (kernel[axis] - 1) + stride[axis]
        conv = getattr(F, f"conv{rank}d")
        ones = torch.ones(x.shape[1], 1, *kernel, dtype=x.dtype)
        y = conv(F.pad(x, extra), ones, stride=stride, padding=pad, dilation=dilation, groups=x.shape[1])
        for axis, n in enumerate(size, start=2):
            y = y.narrow(axis, 0, n)
        return y


def _per_dim(value, rank):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
ADAPTIVE_MAX = {nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d}


def constant_output(module: nn.Module, x: torch.Tensor) -> bool:
    """A normalisation over one element, or a softmax over one channel, outputs a constant: as a
    field, it is the identity (it gathers one position), so it is measured as one."""
    if isinstance(module, nn.GroupNorm):
        return x.numel() // x.shape[0] // module.num_groups == 1
    if isinstance(module, nn.LayerNorm):
        return x.shape[1] == 1 if type(module).__name__ == "ChannelLayerNorm" else x.shape[-1] == 1
    if isinstance(module, nn.Softmax):
        return x.shape[1] == 1
    return False


def into_unit(module, inputs, output):
    """Shift and scale a layer's output into (0, 1] by constants: the same positions influence it."""
    if not isinstance(output, torch.Tensor):
        return output
    if constant_output(module, inputs[0]):
        output = inputs[0]
    low = output.detach().amin()
    if low <= 0:
        output = output - low + 0.5
    return output / output.detach().amax()


def layerscales(network) -> list[str]:
    """The paths of the layers with no module to hook: layer scales (a bare parameter each),
    resizes to a value's size and slices (a call or an expression in the forward)."""
    from cnnspec.backends.torch_lowering import lower

    def moduleless(lowering) -> bool:
        return lowering.parameter is not None or lowering.size_from is not None or lowering.module is None

    return [node.path for node in network.graph.layers() if moduleless(lower(node))]


def measurable(network, named_outputs: bool = False) -> nn.Module:
    """The network built for measuring its receptive fields: returning the layer scales' outputs
    (which no hook sees), or with `named_outputs` what the network returns (its `output` values)."""
    model = network.to_torch(seed=0, outputs=None if named_outputs else layerscales(network) or None)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)
    for path, module in list(model.named_modules()):
        replacement = None
        if isinstance(module, MAX_POOLS):
            replacement = WindowSum(module)
        elif type(module) in ADAPTIVE_MAX:
            replacement = ADAPTIVE_MAX[type(module)](module.output_size)
        if replacement is not None:
            parent, _, name = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, name, replacement)
    for module in model.modules():
        if not module._modules or isinstance(module, WindowSum):
            module.register_forward_hook(into_unit)
    return model.double().eval()


@contextmanager
def merges_recorded(into: dict):
    """Record each merge's output by its id (merges are not modules, so no hook sees them),
    shifted and scaled into (0, 1] as every layer's is: a sum of branches would otherwise reach
    the flat part of a ReLU6 or a hard sigmoid after it."""
    original = backend.SpecModule._merge

    def merge(self, node, *args):
        out = into_unit(None, args, original(self, node, *args))
        into[node.id] = out
        return out

    backend.SpecModule._merge = merge
    try:
        yield
    finally:
        backend.SpecModule._merge = original


def run_recorded(network, model: nn.Module, x: torch.Tensor, layerscales) -> dict[int, torch.Tensor]:
    """Every row's output tensor, by row id: layers by forward hooks, layer scales (a bare
    parameter, no module) through `outputs`, merges as they are made."""
    # a module applied again (`use`) has a row per application, met in the rows' order
    by_path: dict[str, list[int]] = {}
    for row in network.rows:
        if row.kind in REGISTRY:
            by_path.setdefault(row.path, []).append(row.id)
    seen: dict[int, torch.Tensor] = {}

    def recorder(rows: list[int]):
        order = itertools.cycle(rows)

        def hook(module, inputs, output):
            seen[next(order)] = output
        return hook

    handles = [module.register_forward_hook(recorder(by_path[path]))
               for path, module in model.named_modules() if path in by_path]
    try:
        with merges_recorded(seen):
            result = model(*x) if isinstance(x, tuple) else model(x)
    finally:
        for handle in handles:
            handle.remove()
    if isinstance(result, dict):
        for path in layerscales:
            seen[by_path[path][-1]] = result[path]
    return seen


#: samples per batch: two, as group norm refuses a batch of one sample with one value per group
BATCH = 2


def positive_input(network, dtype=torch.float64, batch: int = BATCH):
    """A positive batch; the fields are measured on its first sample. A network of several inputs
    takes one batch per input (a tuple, in declaration order)."""
    generator = torch.Generator().manual_seed(2)
    shapes = list(network.input_shapes.values()) or [network.input_shape]
    batches = tuple((torch.rand(batch, *shape, generator=generator, dtype=dtype) + 0.5).requires_grad_(True)
                    for shape in shapes)
    return batches[0] if len(batches) == 1 else batches


# ---------------------------------------------------------------- the measure


@dataclass
class Tally:
    """What the oracle compared."""

    exact: int = 0          # a position's field: its first and last input position along an axis
    whole: int = 0          # of those, fields that span the whole input
    empty: int = 0          # positions that see nothing (a transposed conv's, between its inputs)
    sizes: int = 0          # a layer's size figure against the widest field measured over a period
    borders: int = 0        # of those, fields that a border clips (padding or a map's end read nothing)
    rows: int = 0
    specs: int = 0
    failures: list = field(default_factory=list)

    def add(self, other: "Tally") -> None:
        for name in ("exact", "whole", "empty", "sizes", "borders", "rows", "specs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures += other.failures


def support(grad: torch.Tensor, rank: int) -> list[list[int]]:
    """Along each input axis, the positions with a nonzero gradient (of the first sample)."""
    nonzero = grad[0] != 0
    found = []
    for axis in range(rank):
        hit = nonzero.movedim(axis + 1, 0).flatten(1).any(1)
        found.append(hit.nonzero().flatten().tolist())
    return found


def positions(row, limit: int = 4) -> list[tuple[dict[int, int], int | None]]:
    """Output positions to measure, by tensor axis, each with the axis it moves along: a centre
    (on each axis the first position from the middle that sees anything), and the positions
    after it along each axis, over one period (up to `limit`)."""
    held = {f.axis: f for f in row.rf if f.axis is not None}
    centre = {}
    for axis, f in held.items():
        middle = (row.out_shape[axis] - 1) // 2
        centre[axis] = next((p for p in range(middle, row.out_shape[axis]) if f.seen(p) is not None), middle)
    chosen = [(centre, None)]
    for axis, f in held.items():
        for step in range(1, min(len(f.phases), limit)):
            if centre[axis] + step < row.out_shape[axis]:
                chosen.append(({**centre, axis: centre[axis] + step}, axis))
    return chosen


def measure_rows(network, rows, model, x, context: str, tally: Tally, weights_seed: int = 3,
                 seen: dict[int, torch.Tensor] | None = None) -> None:
    """Compare each row's field with the gradient support of its output positions: the first and
    the last input positions a position depends on (`Field_.real`), at every position measured,
    by the borders too; the size figure with the widest field measured over a period of positions
    away from the borders. `seen`: the tensors measured, by row id (else each row's output, as
    the model computes it on `x`)."""
    rank = len(network.input_shape) - 1
    if seen is None:
        seen = run_recorded(network, model, x, layerscales(network))
    generator = torch.Generator().manual_seed(weights_seed)
    for row in rows:
        out = seen[row.id][0]
        weights = torch.rand(out.shape, generator=generator, dtype=out.dtype) + 0.5
        widest: dict[int, int] = {}
        measured_phases = {a: 0 for a in range(rank)}
        complete = {a: True for a in range(rank)}
        tally.rows += 1
        for position, moved in positions(row):
            index = tuple(position.get(axis, slice(None)) for axis in range(out.dim()))
            scalar = (out[index] * weights[index]).sum()
            inputs = x if isinstance(x, tuple) else (x,)
            grads = torch.autograd.grad(scalar, inputs, retain_graph=True, allow_unused=True)
            # several inputs of one rank: the positions of any input it depends on, on one grid
            supports = [support(g if g is not None else torch.zeros_like(i), rank) for g, i in zip(grads, inputs)]
            found = [sorted(set().union(*(s[a] for s in supports))) for a in range(rank)]
            measured = [(f[0], f[-1]) if f else None for f in found]
            at = [position.get(f.axis, 0) if f.axis is not None else 0 for f in row.rf]
            real = [f.real(p) for f, p in zip(row.rf, at)]
            where = f"{context}: {row.path or '(top)'} ({row.kind}) at {position}"
            if any(r is None for r in real):
                # a position that sees nothing along one axis sees nothing at all
                tally.empty += 1
                if any(m is not None for m in measured):
                    tally.failures.append(f"{where}: sees nothing by cnnspec, measured {measured}")
                for a, f in enumerate(row.rf):
                    # the centre sees something: the phase of the axis moved along sees nothing
                    measured_phases[a] += moved is not None and f.axis == moved
                continue
            for a, (f, p, expected, got) in enumerate(zip(row.rf, at, real, measured)):
                # away from the borders (of the input and of every map on the way), what the position
                # depends on is its field with the padding counted
                inside = f.seen(p) == expected
                if not inside:
                    complete[a] = False
                    tally.borders += 1
                tally.whole += f.whole
                tally.exact += 1
                if got != expected:
                    tally.failures.append(f"{where}, input axis {a}: cnnspec {expected}"
                                          f"{' (whole)' if f.whole else ''}, measured {got} of {f.size}")
                if f.whole and got != (0, f.size - 1):
                    tally.failures.append(f"{where}, input axis {a}: whole by cnnspec, measured {got} of {f.size}")
                if moved in (None, f.axis) and f.axis is not None:
                    measured_phases[a] += 1
                    if inside and got:
                        widest[a] = max(widest.get(a, 0), got[1] - got[0] + 1)
        for a, f in enumerate(row.rf):
            # over a whole period of positions inside the input, the widest field is the size
            if a in widest and complete[a] and measured_phases[a] == len(f.phases) and f.const is None and f.local:
                tally.sizes += 1
                if widest[a] != int(f.r):
                    tally.failures.append(f"{context}: {row.path} ({row.kind}) input axis {a}: size {f.r}, "
                                          f"the widest measured {widest[a]}")


def measure_outputs(network, context: str, tally: Tally) -> list[str]:
    """Each declared output's field (`output a, b`) on the tensor the model returns under its
    name, against the field of the row that binds the value (the spec binds each output's name
    once) and the figure the summary gives the output; the problems found besides the tally's."""
    from cnnspec.analysis.stats import describe_field

    model = measurable(network, named_outputs=True)
    x = positive_input(network)
    binding = {row.extra["binds"]: row for row in network.rows if "binds" in row.extra}
    inputs = dict(zip(network.input_shapes or [network.graph.input_name], x if isinstance(x, tuple) else (x,)))
    with merges_recorded({}):
        returned = model(*inputs.values())
    problems = []
    for name, key, shape, figure in network.graph.outputs:
        out = returned[name]
        # the value returned (under its own name, or another: `output "0"=p2`), bound at the top
        value = key.rpartition(":")[2]
        if tuple(out.shape[1:]) != shape:
            problems.append(f"{context}: output {name} is {tuple(out.shape[1:])}, cnnspec says {shape}")
            continue
        if value in inputs:
            # an input itself: each position sees itself alone
            if figure != "1" or not torch.equal(out, inputs[value]):
                problems.append(f"{context}: output {name}, the input {value}, has the field {figure}")
            continue
        row = binding[value]
        if describe_field(row.rf) != figure:
            problems.append(f"{context}: output {name}: field {figure}, its row's {describe_field(row.rf)}")
        measure_rows(network, [row], model, x, f"{context} output {name}", tally, seen={row.id: out})
    return problems


def measure_activations(network, context: str) -> list[str]:
    """The element count of every layer's and merge's output against the checker's figures."""
    scales = layerscales(network)
    model = network.to_torch(seed=0, outputs=scales or None).eval()
    generator = torch.Generator().manual_seed(0)
    x = tuple(torch.rand(BATCH, *shape, generator=generator) for shape in network.input_shapes.values())
    with torch.no_grad():
        seen = run_recorded(network, model, x if len(x) > 1 else x[0], scales)
    problems = []
    total = 0
    for row in network.rows:
        count = seen[row.id][0].numel()
        total += count
        if 4 * count != row.activation_bytes:
            problems.append(f"{context}: {row.path} ({row.kind}) returns {count} elements, cnnspec says "
                            f"{row.activation_bytes} bytes")
    if 4 * total != network.activation_bytes:
        problems.append(f"{context}: total {4 * total} bytes measured, cnnspec {network.activation_bytes}")
    return problems


# ---------------------------------------------------------------- specs


def load_at(path: Path, scale: int = 1, input_shape=None):
    """A zoo spec at `scale` times its spatial input size (its `expect` contracts, written for its
    own size, left out)."""
    text = re.sub(r"(?m)^\s*expect\b.*$", "", path.read_text())
    declared = cnnspec.load(path).input_shape
    shape = input_shape or (declared[0], *(n * scale for n in declared[1:]))
    return cnnspec.loads(text, path=str(path), root=path.parent, input=shape)


def sample(rows, count: int, seed: int) -> list:
    rows = list(rows)
    if len(rows) <= count:
        return rows
    return random.Random(seed).sample(rows, count)
