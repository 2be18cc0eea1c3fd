"""What each declared output is computed from: its cone of layers and merges, and their figures.

A network with `output a, b` computes every statement, but a deployment that keeps one output
needs only the layers that output depends on. The cone of a tensor is the set of graph nodes
(layers and merges, by id) whose results reach it: a layer adds itself to its input's cone, a
merge adds itself to the union of its branches', and a named value keeps the cone of the tensor
bound to it. Cones are Python integers used as bit sets, one bit per node id.

Figures of a cone: MACs and activation bytes summed over its nodes (each application counts),
parameters and buffers over its distinct state_dict paths, as the module's first application
counts them (a module applied again with `use` is saved once, and its later applications' rows
hold no parameters: an output computed from a later application alone needs them all the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnspec.graph import Graph, GraphNode
from cnnspec.layers import REGISTRY


@dataclass(frozen=True)
class Needs:
    params: int
    buffers: int
    macs: int
    activation_bytes: int
    #: layers computed for it (merges left out, as `expect layers` counts)
    layers: int


def output_cones(graph: Graph) -> dict[str, int]:
    """Each declared output's name -> the bit set of the node ids it is computed from."""
    if not graph.outputs:
        return {}
    values: dict[str, int] = {}
    _cone(graph.body, 0, values)
    return {name: values.get(key, 0) for name, key, _, _ in graph.outputs}


def _cone(node: GraphNode, cone: int, values: dict[str, int]) -> int:
    """The cone of what `node` returns, given the cone of its input; `values` holds the cones of
    the named values its module has bound so far (a scope starts its own, as it reads only its
    input)."""
    if node.node == "layer":
        return cone | (1 << node.id)
    if node.node == "merge":
        joined = 0
        for branch in node.branches:
            joined |= _cone(branch, cone, values)
        return joined | (1 << node.id)
    inner = {} if node.scope is not None else values
    if node.source is not None:
        cone = values.get(node.source, 0)
    for item in node.items:
        cone = _cone(item, cone, inner)
    if node.bind is not None:
        values[node.bind] = cone
    return cone


def figures(cone: int, rows) -> Needs:
    """The figures of the nodes in `cone`, from the summary's rows (one per layer and merge)."""
    saved_at: dict[str, object] = {}
    for row in rows:
        saved_at.setdefault(row.path, row)
    chosen = [row for row in rows if cone >> row.id & 1]
    saved = [saved_at[path] for path in dict.fromkeys(row.path for row in chosen)]
    return Needs(params=sum(row.params for row in saved), buffers=sum(row.buffers for row in saved),
                 macs=sum(row.macs for row in chosen), activation_bytes=sum(row.activation_bytes for row in chosen),
                 layers=sum(row.kind in REGISTRY for row in chosen))


def output_needs(graph: Graph, rows) -> dict[str, Needs]:
    """Each declared output's name -> the figures of what it is computed from (empty for a
    network that returns its last tensor)."""
    return {name: figures(cone, rows) for name, cone in output_cones(graph).items()}
