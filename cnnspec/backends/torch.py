"""`Network.to_torch()`: the resolved graph as a PyTorch `nn.Module`.

Every layer becomes its own module at its state_dict path (`layer2.0.downsample.0`), inside
one `SpecModule` per scope (a block call or a labelled group), so the keys are the spec's
labels and positions exactly as `nn.Sequential` would number them. A `SpecModule` runs its
part of the graph in order; merges (residual add, concat, scale) happen in its `forward`.
Each scope can be called on its own: `model.layer3(x)`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnspec.backends import torch_modules
from cnnspec.backends.torch_lowering import Lowering, ModuleCall, lower
from cnnspec.backends.weights import DEFAULT_MEMORY_BUDGET, check_budget
from cnnspec.graph import MergeNode, SeqNode, scopes_under

if TYPE_CHECKING:
    from cnnspec.graph import CheckedGraph


class _Recorder:
    """Activations asked for by name, shared by every scope of one model during a forward pass."""

    def __init__(self, wanted: Iterable[str]):
        self.wanted = frozenset(wanted)
        self.values: dict[str, torch.Tensor] | None = None

    def record(self, path: str, value: torch.Tensor) -> None:
        # a scope's output is recorded after its last layer's, so a name means the scope
        if self.values is not None and path in self.wanted and not self.paused:
            self.values[path] = value

    #: while a module is applied again (`use`): a name means its first application, where it is defined
    paused = False

    @contextmanager
    def pausing(self, pause: bool):
        before, self.paused = self.paused, self.paused or pause
        try:
            yield
        finally:
            self.paused = before


class SpecModule(nn.Module):
    """One scope of a spec: its layers and nested scopes as submodules, its items run in order."""

    def __init__(self, seq: SeqNode, prefix: str, lowerings: dict[str, Lowering], recorder: _Recorder):
        super().__init__()
        # plain attributes, not submodules: the graph and the recorder carry no weights
        self._seq = seq
        self._prefix = prefix
        self._recorder = recorder
        # every layer's lowering (the network's, shared by its scopes): a layer applied again by
        # `use` may be a submodule of a scope below this one
        self._lowerings = lowerings
        self._build(seq.items, lowerings)

    def _relative(self, path: str) -> str:
        return path[len(self._prefix):]

    def _build(self, items, lowerings) -> None:
        for item in items:
            if item.node != "merge" and item.shared:
                # a module applied again (`use`) is the one its first application built
                continue
            if item.node == "layer":
                lowering = lowerings[item.path]
                if lowering.parameter is not None:
                    shape, value = lowering.parameter
                    # saved under the layer's own name, as torchvision's `layer_scale`
                    self._place(self._relative(item.path), nn.Parameter(torch.full(shape, value)))
                    continue
                if lowering.size_from is not None:
                    # F.interpolate to a value's size, in the forward: no module
                    continue
                if lowering.inline is not None:
                    # an expression of the input, in the forward: no module
                    continue
                self._place(self._relative(item.path), instantiate(lowering))
            elif item.node == "merge":
                for branch in item.branches:
                    self._build(branch.items, lowerings)
            elif item.scope is not None:
                self._place(self._relative(item.scope),
                            SpecModule(item, item.scope + ".", lowerings, self._recorder))
            else:
                self._build(item.items, lowerings)

    def _place(self, relative: str, member: nn.Module | nn.Parameter) -> None:
        """Register a module or parameter at a dotted path below this scope (a dotted label's),
        creating plain containers on the way."""
        *parents, name = relative.split(".")
        owner: nn.Module = self
        for part in parents:
            if part not in owner._modules:
                owner.add_module(part, nn.Module())
            owner = owner._modules[part]
        if isinstance(member, nn.Parameter):
            owner.register_parameter(name, member)
        else:
            owner.add_module(name, member)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._seq.items, x, {})

    def _run(self, items, x: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run `items` on `x`; `values` holds this scope's named values by key."""
        for item in items:
            if item.node == "layer":
                lowering = self._lowerings[item.path]
                if lowering.pad is not None:
                    x = F.pad(x, lowering.pad, mode=lowering.pad_mode)
                relative = self._relative(item.path)
                if lowering.size_from is not None:
                    x = F.interpolate(x, size=values[lowering.size_from].shape[2:], **dict(lowering.module.kwargs))
                elif lowering.inline is not None:
                    x = expression(lowering.inline)(x)
                elif lowering.parameter is not None:
                    x = self.get_parameter(relative) * x
                else:
                    x = self.get_submodule(relative)(x)
                if not item.shared:
                    self._recorder.record(item.path, x)
            elif item.node == "merge":
                x = self._merge(item, x, values)
                self._recorder.record(item.path, x)
            elif item.scope is not None:
                with self._recorder.pausing(item.shared):
                    x = self.get_submodule(self._relative(item.scope))(x)
                if not item.shared:
                    self._recorder.record(item.scope, x)
            else:
                if item.source is not None:
                    x = values[item.source]
                x = self._run(item.items, x, values)
                if item.bind is not None:
                    values[item.bind] = x
        return x

    def _merge(self, merge: MergeNode, x: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = [self._run(branch.items, x, values) for branch in merge.branches]
        if merge.op == "concat":
            return torch.cat(torch_modules.center_crop(outputs) if merge.crop else outputs, dim=1)
        result = outputs[0]
        for other in outputs[1:]:
            result = result + other if merge.op == "add" else result * other
        return result


class SpecNetwork(SpecModule):
    """The whole network. `forward` returns the tensor that flows out, or a dict of the spec's
    `output` values by name, in their order; with `outputs`, a dict of those named activations."""

    def __init__(self, network: "CheckedGraph", lowerings: dict[str, Lowering], outputs: Sequence[str] = ()):
        super().__init__(network.graph.body, "", lowerings, _Recorder(outputs))
        self.spec_name = network.name
        self.input_shape = network.input_shape
        self.input_shapes = dict(network.input_shapes)
        self.outputs = tuple(outputs)
        self._spec_outputs = tuple((name, key) for name, key, _, _ in network.graph.outputs)
        #: (name, value key) of every input, in declaration order
        self._inputs = tuple((name, key) for name, key, _ in network.graph.inputs) or (("x", None),)

    def forward(self, *inputs: torch.Tensor):
        """`forward(x)`, or one tensor per input in declaration order (`forward(a, b)`)."""
        if len(inputs) != len(self._inputs):
            names = ", ".join(name for name, _ in self._inputs)
            raise TypeError(f"{self.spec_name} takes {len(self._inputs)} input{'s' * (len(self._inputs) > 1)} "
                            f"({names}), given {len(inputs)}")
        # the first input flows in; the others are values under their names
        values = {key: tensor for (_, key), tensor in zip(self._inputs[1:], inputs[1:])}
        x = inputs[0]
        if not self.outputs and self._spec_outputs:
            self._run(self._seq.items, x, values)
            return {name: values[key] for name, key in self._spec_outputs}
        if not self.outputs:
            return self._run(self._seq.items, x, values)
        self._recorder.values = {}
        try:
            self._run(self._seq.items, x, values)
            recorded = self._recorder.values
        finally:
            self._recorder.values = None
        return {name: recorded[name] for name in self.outputs}

    def extra_repr(self) -> str:
        if len(self.input_shapes) > 1:
            shown = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in self.input_shapes.items())
            return f"spec={self.spec_name!r}, inputs={shown}"
        return f"spec={self.spec_name!r}, input={'x'.join(map(str, self.input_shape))}"


@functools.cache
def expression(text: str):
    """A layer written as an expression of its input (`{x}[:, 16:48]`), as a function of it."""
    return eval(f"lambda x: {text.format(x='x')}", {"torch": torch})


def instantiate(lowering: Lowering) -> nn.Module:
    call: ModuleCall = lowering.module
    cls = getattr(torch_modules, call.name) if call.is_helper else getattr(nn, call.name)
    module = cls(*call.args, **dict(call.kwargs))
    if lowering.weights is not None:
        with torch.no_grad():
            module.weight.copy_(torch.tensor(lowering.weights, dtype=module.weight.dtype).reshape(module.weight.shape))
            if module.bias is not None:
                # a literal kernel is the whole filter: no random offset on top of it
                module.bias.zero_()
    if lowering.frozen:
        module.requires_grad_(False)
    return module


def to_torch(network: "CheckedGraph", seed: int | None = None, outputs: Sequence[str] | None = None,
             memory_budget: int | None = DEFAULT_MEMORY_BUDGET) -> SpecNetwork:
    """Build the network as an `nn.Module`.

    `seed` makes the (PyTorch-default) initialisation reproducible without touching the
    global random state. `outputs` names activations (layer, scope or merge paths, as in
    `cnnspec summary`) to return from `forward` as a dict. `memory_budget` (bytes, fp32
    weights and buffers) refuses, before allocating, a model too large for it; `None` turns it off.
    """
    check_budget(network, memory_budget)
    if outputs:
        check_outputs(network, outputs)
    lowerings = {node.path: lower(node) for node in network.graph.layers()}
    if seed is None:
        return SpecNetwork(network, lowerings, outputs or ())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpecNetwork(network, lowerings, outputs or ())


def check_outputs(network: "CheckedGraph", outputs: Sequence[str]) -> None:
    from cnnspec.wording import closest

    known = {row.path for row in network.rows} | set(network.scope_blocks) | {seq.scope for seq, _ in scopes_under(network.graph.body)}
    for name in outputs:
        if name not in known:
            near = closest(name, known)
            hint = f"; did you mean `{near}`?" if near else ""
            raise ValueError(f"`{name}` names no layer, merge or scope of `{network.name}`{hint}")
