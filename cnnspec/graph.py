"""The resolved graph: blocks expanded, names resolved, every parameter evaluated.

`Graph.body` is a tree of sequences, layers and merges. Each `LayerNode` carries its
state_dict path (`layer2.0.downsample.0`), its validated parameters (a discriminated union
of the registry's parameter models), its source span and its input and output shapes.

The elaborator builds these nodes unvalidated (`model_construct`, `built`) from parts it has
validated already (each layer's parameters by its kind's model); validating them again would
build the schema of the union of every layer kind in each process, a third of a small spec's
check time.
`tests/test_api.py` validates the zoo's graphs against the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from cnnspec.analysis.stats import Row, describe_field
from cnnspec.diagnostics import SourceMap
from cnnspec.ir import Buildable, Span
from cnnspec.layers import REGISTRY

LayerParams = Annotated[Union[tuple(kind.Params for kind in REGISTRY.values())], Field(discriminator="kind")]

Shape = tuple[int, ...]


class GraphNode(Buildable, BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class LayerNode(GraphNode):
    node: Literal["layer"] = "layer"
    id: int
    kind: str
    path: str
    params: LayerParams
    in_shape: Shape
    out_shape: Shape
    span: Span
    #: the key of the value whose spatial size the layer takes at run time (`upsample size=c1`;
    #: `params` hold that size as checked); none for a layer that reads its input alone
    size_from: str | None = None
    #: an application of a module defined earlier (`use`): its state is that layer's, at `path`
    shared: bool = False


class MergeNode(GraphNode):
    """Branches applied to the same input, then joined: add (residual), concat or mul (scale)."""

    node: Literal["merge"] = "merge"
    id: int
    op: Literal["add", "concat", "mul"]
    branches: tuple["SeqNode", ...]
    crop: bool = False
    path: str
    in_shape: Shape
    out_shape: Shape
    span: Span


class SeqNode(GraphNode):
    """Items applied in order. `scope` is set for block calls and labelled groups.

    Named values: a sequence with `source` starts from the value stored under that key instead of
    its input, and one with `bind` stores its output under that key. Keys are unique within the
    scope (the module) that computes them, and read only there; the input is stored under its
    name by a first, empty sequence when the spec reads it."""

    node: Literal["seq"] = "seq"
    items: tuple[Annotated[Union[LayerNode, MergeNode, "SeqNode"], Field(discriminator="node")], ...] = ()
    scope: str | None = None
    source: str | None = None
    bind: str | None = None
    block: str | None = None
    #: a block call's arguments as bound (defaults included), in declaration order
    args: tuple[tuple[str, Any], ...] = ()
    span: Span | None = None
    #: an application of a scope defined earlier (`use`): its modules are that scope's, at `scope`
    shared: bool = False


class Graph(GraphNode):
    name: str
    #: the first input's: the tensor that flows into the first statement
    input_name: str
    input_shape: Shape
    #: the first output's shape where `outputs` are declared
    output_shape: Shape
    body: SeqNode
    #: `output a, b`: (name, value key, shape, receptive field as the summary shows it) of each
    #: value the network returns, in order; none when it returns the tensor that flows out
    outputs: tuple[tuple[str, str, Shape, str], ...] = ()
    #: (name, value key, shape) of every input in declaration order, the first one first; the
    #: backends take them in this order and store each under its key before the body runs
    inputs: tuple[tuple[str, str, Shape], ...] = ()

    def layers(self) -> Iterator[LayerNode]:
        """Every layer in execution order, a shared module's at its first application only."""
        return layers_under(self.body)


def walk(node: GraphNode) -> Iterator[GraphNode]:
    """Every node from `node` down, itself first, in execution order: sequences, layers and
    merges, a merge's branches one after another (without recursion, for deep graphs)."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if node.node == "seq":
            stack.extend(reversed(node.items))
        elif node.node == "merge":
            stack.extend(reversed(node.branches))


def layers_under(node: GraphNode) -> Iterator[LayerNode]:
    """The layers from `node` down, in execution order, each module once: a shared module's
    applications after its first (`use`) hold no layers of their own."""
    stack = [node]
    while stack:
        node = stack.pop()
        if node.node == "layer":
            if not node.shared:
                yield node
        elif node.node == "seq":
            if not node.shared:
                stack.extend(reversed(node.items))
        else:
            stack.extend(reversed(node.branches))


def opened(items, scopes: bool = False) -> list:
    """Items with the sequences among them inlined: the unscoped ones, and with `scopes` block
    calls and labelled groups too. Where one reads or stores a named value, an empty sequence
    stays as the mark of where its items begin (`source`) or end (`bind`)."""
    out = []
    for item in items:
        if item.node == "seq" and (scopes or item.scope is None):
            if item.source is not None:
                out.append(SeqNode.model_construct(items=(), source=item.source))
            out.extend(opened(item.items, scopes))
            if item.bind is not None:
                out.append(SeqNode.model_construct(items=(), bind=item.bind))
        else:
            out.append(item)
    return out


def scopes_under(node: GraphNode, outer: tuple[str, ...] = ()) -> Iterator[tuple[SeqNode, tuple[str, ...]]]:
    """(scoped sequence, the scopes around it) for every block call and labelled group from
    `node` down, outer ones first."""
    stack = [(node, outer)]
    while stack:
        node, outer = stack.pop()
        if node.node == "merge":
            stack.extend((branch, outer) for branch in reversed(node.branches))
        elif node.node == "seq" and not node.shared:
            if node.scope is not None:
                yield node, outer
                outer = outer + (node.scope,)
            stack.extend((item, outer) for item in reversed(node.items))



def named_shapes(shapes: dict) -> str:
    """`a 1x64x64, b 1x64x64`: named tensors with their shapes, in order."""
    return ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in shapes.items())


class CheckedGraph:
    """A spec once checked, as the backends, summaries and pictures take it: the resolved graph,
    each layer's figures (`rows`, in execution order), the totals, and the sources that a
    diagnostic raised later (a backend's E303 or E304) quotes. `Network` adds the diagnostics and
    the conveniences of the Python API on top.

    Totals: `params` (learnable, as `sum(p.numel() for p in model.parameters())`),
    `trainable` (without frozen literal kernels), `buffers` (BatchNorm running statistics),
    `macs` (conv and linear multiply-accumulates per sample, torchvision's "GFLOPS"),
    `activation_bytes` (the fp32 size of the tensor every layer and every merge returns, per
    sample, summed: views such as `flatten` counted as the tensors they return; not a peak),
    `receptive_field` (the output's, as the summary shows it: `195`, `7x11`, or `whole` where a
    global operation makes it span the whole input; see `cnnspec.analysis.stats`).
    """

    def __init__(self, graph: Graph, rows: list[Row], sources: SourceMap, path: str,
                 scope_blocks: dict[str, str], params: int, buffers: int, macs: int, activation_bytes: int):
        self.graph = graph
        self.rows = rows
        self.sources = sources
        self.path = path
        #: each block call's scope path -> the block it calls
        self.scope_blocks = scope_blocks
        self.name = graph.name
        self.input_shape = graph.input_shape
        #: every input's name -> its shape, in declaration order (the first is `input_shape`)
        self.input_shapes = {name: shape for name, _, shape in graph.inputs}
        self.output_shape = graph.output_shape
        #: each declared output's name -> its shape, in order (empty: one unnamed output)
        self.output_shapes = {name: shape for name, _, shape, _ in graph.outputs}
        self.params = params
        self.buffers = buffers
        self.macs = macs
        self.activation_bytes = activation_bytes
        self.trainable = sum(r.trainable for r in rows)
        self.receptive_field = (graph.outputs[0][3] if graph.outputs else describe_field(rows[-1].rf)) if rows else "1"

    def describe_inputs(self) -> str:
        """`input 3x224x224`, or `inputs a 1x64x64, b 1x64x64` for a network of several."""
        if len(self.input_shapes) > 1:
            return "inputs " + named_shapes(self.input_shapes)
        return f"input {'x'.join(map(str, self.input_shape))}"

    def describe_outputs(self) -> str:
        """`output 1000`, or `outputs logits 1000, aux 1000` for a network that declares them."""
        if self.output_shapes:
            return "outputs " + named_shapes(self.output_shapes)
        return f"output {'x'.join(map(str, self.output_shape))}"
