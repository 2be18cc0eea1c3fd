"""Graphviz DOT text of a network at a depth: the same boxes as the diagram, frames as clusters,
and every edge where the tensor really flows: a statement that starts from a named value is
wired from where that value was bound, each input and each declared output is a node of its own.

cnnspec does not run Graphviz; `dot -Tsvg` renders this where it is installed."""

from __future__ import annotations

import json

from cnnspec.draw.geometry import JOIN_SYMBOL, Layout, figures, find_scope, layer_text, scope_shapes, scope_title
from cnnspec.layers.base import describe_shape


class _Dot:
    def __init__(self, network, depth):
        self.layout = Layout(network, depth, "down")
        self.lines: list[str] = []
        self.count = 0
        #: the named values bound so far in the module being wired: key -> (ends, shape); a
        #: scope (a block call, a labelled group) reads only its input and starts its own
        self.values: dict[str, tuple[list[str], tuple]] = {}

    def _node(self, text: str, shape: str = "box") -> str:
        self.count += 1
        name = f"n{self.count}"
        self.lines.append(f"{name} [label={json.dumps(text, ensure_ascii=False)}, shape={shape}];")
        return name

    def _edge(self, sources, target, shape) -> None:
        for source in sources:
            self.lines.append(f"{source} -> {target} [label={json.dumps(describe_shape(shape), ensure_ascii=False)}];")

    def sequence(self, items, outer, ends, shape):
        """Wires the items after `ends` (whose output has `shape`); returns the new ends and shape."""
        for item in items:
            ends, shape = self.item(item, outer, ends, shape)
        return ends, shape

    def item(self, item, outer, ends, shape):
        if item.node == "layer":
            node = self._node(layer_text(item))
            self._edge(ends, node, shape)
            return [node], item.out_shape
        if item.node == "merge":
            outs = []
            for branch in item.branches:
                branch_ends, branch_shape = self.item(branch, outer, ends, shape)
                outs.append((branch_ends, branch_shape))
            join = self._node(JOIN_SYMBOL[item.op], shape="circle")
            for branch_ends, branch_shape in outs:
                self._edge(branch_ends, join, branch_shape)
            return [join], item.out_shape
        if item.source is not None and item.source in self.values:
            ends, shape = self.values[item.source]
        if item.scope is None:
            ends, shape = self.sequence(item.items, outer, ends, shape)
        else:
            ends, shape = self.scope(item, outer, ends, shape)
        if item.bind is not None:
            self.values[item.bind] = (ends, shape)
        return ends, shape

    def scope(self, item, outer, ends, shape):
        title = scope_title(item, outer[-1] if outer else None, self.layout.network.sources)
        if self.layout.depth is not None and len(outer) + 1 >= self.layout.depth:
            row = self.layout.collapsed.get(item.scope)
            if row is None:
                return ends, shape
            node = self._node(f"{title}\n{figures(row)}", shape="box3d")
            self._edge(ends, node, shape)
            return [node], row.out_shape
        self.count += 1
        self.lines.append(f"subgraph cluster_{self.count} {{ label={json.dumps(title, ensure_ascii=False)}; style=dashed;")
        outside, self.values = self.values, {}
        result = self.sequence(item.items, outer + (item.scope,), ends, shape)
        self.values = outside
        self.lines.append("}")
        return result


def to_dot(network, depth: int | None = None, scope: str | None = None) -> str:
    dot = _Dot(network, depth)
    graph = network.graph
    if scope is None:
        inputs = graph.inputs or ((graph.input_name, graph.input_name, network.input_shape),)
        items, outer = graph.body.items, ()
    else:
        seq, outer = find_scope(network, scope)
        inputs, items = (("in", "in", scope_shapes(seq)[0]),), (seq,)
    for name, key, shape in inputs:
        dot.values[key] = ([dot._node(f"{name}: {describe_shape(shape)}", shape="oval")], shape)
    first = dot.values[inputs[0][1]]
    ends, shape = dot.sequence(items, outer, *first)
    if scope is None and graph.outputs:
        for name, key, out_shape, _ in graph.outputs:
            value_ends, value_shape = dot.values.get(key, (ends, shape))
            dot._edge(value_ends, dot._node(f"{name}: {describe_shape(out_shape)}", shape="oval"), value_shape)
    else:
        out_shape = network.output_shape if scope is None else scope_shapes(seq)[1]
        dot._edge(ends, dot._node(f"output {describe_shape(out_shape)}", shape="oval"), shape)
    body = "\n  ".join(dot.lines)
    return f"digraph {json.dumps(network.name)} {{\n  rankdir=TB; node [fontname=monospace];\n  {body}\n}}\n"
