"""Shapes in the exported file: a value_info entry for every tensor a node makes, named after the
spec's labels, equal to cnnspec's shapes, to onnx's strict inference and to what onnxruntime
computes."""

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
from conftest import SPECS, zoo_params  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.runtime import session  # noqa: E402

ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))
#: kinds that lower to no node at inference, so no tensor carries their name
NO_NODE = {"dropout", "dropout2d", "identity"}


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", zoo_params(ZOO))
def test_value_info_declares_every_tensor_with_cnnspec_shapes(name):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    model = network.to_onnx(fold_bn=False)
    declared = {v.name: dims(v) for v in model.graph.value_info}
    # the graph's outputs (`output`, or the spec's named ones) are declared as outputs instead
    outputs = {o.name for o in model.graph.output}
    made = [out for node in model.graph.node for out in node.output if out not in outputs]
    assert sorted(made) == sorted(declared)
    for shape in declared.values():
        # fully known: the batch first (a weight transposed for a MatMul has none, a resize's
        # gathered index is a scalar), sizes after
        assert all(isinstance(d, int) and d > 0 for d in shape[shape[:1] == ["N"]:]), shape
    initializers = {t.name for t in model.graph.initializer}
    layers = list(network.graph.layers())
    # a layer's tensor is named by its path; a bare parameter (`layerscale`) or a declared output
    # (resnet50_fpn's "1" beside its unlabelled layer `1`) has the path already
    taken = initializers | outputs
    tensors = {layer.path: layer.path + "_2" if layer.path in taken else layer.path for layer in layers}
    named = [layer for layer in layers if tensors[layer.path] in declared]
    for layer in named:
        assert declared[tensors[layer.path]] == ["N", *layer.out_shape], layer.path
    # every layer with a node has a tensor of its own name, but the last, which is `output`
    unnamed = [layer.path for layer in layers if layer not in named and layer.kind not in NO_NODE]
    assert unnamed in ([], [layers[-1].path])
    # the node making a layer's tensor is named after the layer too
    node_names = {out: node.name for node in model.graph.node for out in node.output}
    assert all(node_names[tensors[layer.path]] == tensors[layer.path] for layer in named)
    # onnx's strict inference refuses a declared shape that differs from the one it infers
    onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "mobilenet_v2", "squeezenet1_1", "googlenet",
                                  "convnext_tiny", "dcgan_generator", "autoencoder"])
def test_declared_shapes_are_what_onnxruntime_computes(name):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    model = network.to_onnx()
    declared = {v.name: [2 if d == "N" else d for d in dims(v)] for v in model.graph.value_info}
    # every declared tensor as an output of the graph, run on a batch of 2
    model.graph.output.extend(list(model.graph.value_info))
    sess = session(model, optimise=False)
    x = np.random.default_rng(0).standard_normal((2, *network.input_shape)).astype(np.float32)
    results = sess.run(list(declared), {sess.get_inputs()[0].name: x})
    for (tensor, shape), value in zip(declared.items(), results):
        assert list(value.shape) == shape, tensor


def test_value_info_follows_a_fixed_batch_and_keeps_the_export_byte_identical():
    network = cnnspec.load(SPECS / "resnet18.cnn")
    fixed = network.to_onnx(batch=4)
    assert all(dims(v)[0] == 4 for v in fixed.graph.value_info)
    assert network.to_onnx().SerializeToString() == network.to_onnx().SerializeToString()
