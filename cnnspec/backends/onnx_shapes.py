"""Shapes in the file: a `value_info` entry for every tensor a node makes, so that viewers
(Netron) and tools show shapes without running shape inference.

The output of each layer and merge is declared with the shape cnnspec inferred (its tensor is
named by the layer's state_dict path, `layer1.0.conv1`, or the merge's, `layer1.0:add`); the
tensors inside one layer's lowering (a Pad before a Conv, the sums of a two-level mean) take the
shape onnx's own inference gives them, on a copy of the graph that holds the weights' shapes
and not their values.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def declare_shapes(model: onnx.ModelProto, layer_shapes: dict[str, tuple[int, ...]], batch: int | str) -> None:
    """Fill `model.graph.value_info`, in node order, for every node output that is not a graph
    output: `layer_shapes` (per sample, without the batch) where given, onnx's inference elsewhere."""
    graph = model.graph
    outputs = {v.name for v in graph.output}
    inferred = {v.name: v for v in shapes_without_weights(model).graph.value_info}
    entries = []
    for node in graph.node:
        for name in node.output:
            if not name or name in outputs:
                continue
            if name in layer_shapes:
                entries.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *layer_shapes[name]]))
            elif name in inferred:
                entries.append(inferred[name])
    del graph.value_info[:]
    graph.value_info.extend(entries)


def shapes_without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnx's shape inference on the graph with its float initializers turned into inputs of the
    same type and shape: only the int64 ones (shapes, axes, pads) have values that decide shapes,
    and serialising the weights for the inference would copy every byte of them."""
    graph = model.graph
    kept = [t for t in graph.initializer if t.data_type != TensorProto.FLOAT and t.data_type != TensorProto.FLOAT16]
    weights = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer
               if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    light = helper.make_graph(list(graph.node), graph.name, [*graph.input, *weights], list(graph.output), kept)
    light_model = helper.make_model(light, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return onnx.shape_inference.infer_shapes(light_model, strict_mode=True)
