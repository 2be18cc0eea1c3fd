"""float16 models: the float32 graph cnnspec built, its weights and computation in float16.

Each float32 initializer is stored as float16, and every tensor type in the graph (inputs,
outputs, value_info) follows, except the inputs ONNX types as float32 whatever the data
(Resize's `scales`). With `keep_io_types` the model takes and gives float32: a Cast to float16
after the input and one back to float32 before the output. onnxruntime runs a float16 node on
the CPU where it has a float16 kernel and casts around the others.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: the largest finite float16
FLOAT16_MAX = 65504.0
#: (op type, input index) of the inputs that stay float32 in a float16 graph
FLOAT32_INPUTS = {("Resize", 2)}


class Float16Error(ValueError):
    """A weight float16 cannot hold."""


def to_float16(model: onnx.ModelProto, keep_io_types: bool = False) -> onnx.ModelProto:
    """`model` (float32) with its weights and computation in float16, in place; returned."""
    graph = model.graph
    kept = {node.input[index] for node in graph.node for op, index in FLOAT32_INPUTS
            if node.op_type == op and len(node.input) > index}
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type != TensorProto.FLOAT or tensor.name in kept:
            continue
        array = numpy_helper.to_array(tensor)
        finite = array[np.isfinite(array)]
        if finite.size and np.abs(finite).max() > FLOAT16_MAX:
            raise Float16Error(f"`{tensor.name}` holds {np.abs(finite).max():.6g}, more than float16's largest "
                               f"value ({FLOAT16_MAX:g}): export it in float32")
        graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float16), tensor.name))
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    if keep_io_types:
        keep_float32_io(graph)
    return model


def keep_float32_io(graph: onnx.GraphProto) -> None:
    """float32 inputs and outputs around the float16 graph: `x` is cast to `x:float16`, which the
    nodes read instead; the node making `output` makes `output:float16`, cast back to `output`."""
    casts_in, casts_out = [], []
    for value in graph.input:
        inner = f"{value.name}:float16"
        rename(graph, value.name, inner)
        casts_in.append(helper.make_node("Cast", [value.name], [inner], name=inner, to=TensorProto.FLOAT16))
    for value in graph.output:
        inner = f"{value.name}:float16"
        rename(graph, value.name, inner)
        casts_out.append(helper.make_node("Cast", [inner], [value.name], name=value.name, to=TensorProto.FLOAT))
    for value in [*graph.input, *graph.output]:
        graph.value_info.append(typed(value, f"{value.name}:float16", TensorProto.FLOAT16))
        value.type.tensor_type.elem_type = TensorProto.FLOAT
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)


def rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Tensor `old` is `new` wherever a node reads or makes it; a node named after it takes the name."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
        if node.name == old:
            node.name = new


def typed(value: onnx.ValueInfoProto, name: str, elem_type: int) -> onnx.ValueInfoProto:
    """A copy of `value` named `name`, of `elem_type`."""
    copy = onnx.ValueInfoProto()
    copy.CopyFrom(value)
    copy.name = name
    copy.type.tensor_type.elem_type = elem_type
    return copy
