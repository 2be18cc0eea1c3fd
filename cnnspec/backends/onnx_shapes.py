"""Shapes in the file: a `value_info` entry for every tensor a node makes, so that viewers
(Netron) and tools show shapes without running shape inference.

The output of each layer and merge is declared with the shape cnnspec inferred (its tensor is
named by the layer's state_dict path, `layer1.0.conv1`, or the merge's, `layer1.0:add`), and so
is every tensor a lowering gives a shape to (`GraphBuilder.op(shape=...)`); the other tensors
inside one layer's lowering (a Pad before a Conv, the sums of a two-level mean) take the shape
onnx's own inference gives them from those, on a copy of the graph that holds the weights'
shapes and not their values.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def declare_shapes(model: onnx.ModelProto, declared: dict[str, list] | None = None) -> None:
    """Fill `model.graph.value_info`, in node order, for every node output that is not a graph
    output: the shapes of `declared` (full shapes, the batch first) where given, with the element
    type onnx's inference gives (float32 where it gives none), the model's own entries next (a
    quantiser's graph keeps the float one's), onnx's inference elsewhere."""
    graph = model.graph
    outputs = {v.name for v in graph.output}
    declared = declared or {}
    produced = {name for node in graph.node for name in node.output}
    known = {v.name: v for v in graph.value_info}
    # the declared shapes seed the inference (their element types left to it): what follows them
    # is inferred from them
    seeds = [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, shape) for name, shape in declared.items()
             if name in produced and name not in outputs]
    inferred = {v.name: v for v in shapes_without_weights(model, seeds).graph.value_info}
    entries = []
    for node in graph.node:
        for name in node.output:
            if not name or name in outputs:
                continue
            if name in declared:
                found = inferred.get(name) or known.get(name)
                elem_type = found.type.tensor_type.elem_type if found is not None else TensorProto.FLOAT
                entries.append(helper.make_tensor_value_info(name, elem_type or TensorProto.FLOAT, declared[name]))
            elif name in known or name in inferred:
                entries.append(known.get(name) or inferred[name])
    del graph.value_info[:]
    graph.value_info.extend(entries)


def shapes_without_weights(model: onnx.ModelProto, value_info: list | None = None) -> onnx.ModelProto:
    """onnx's shape inference on the graph with its initializers turned into inputs of the same
    type and shape, but the int64 ones: only shapes, axes and pads have values that decide shapes,
    and serialising the weights for the inference would copy every byte of them. `value_info`
    seeds it with shapes known already."""
    graph = model.graph
    kept = [t for t in graph.initializer if t.data_type == TensorProto.INT64]
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer
               if t.data_type != TensorProto.INT64]
    light = helper.make_graph(list(graph.node), graph.name, [*graph.input, *weights], list(graph.output), kept,
                              value_info=value_info or [])
    light_model = helper.make_model(light, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return onnx.shape_inference.infer_shapes(light_model, strict_mode=True, data_prop=True)
