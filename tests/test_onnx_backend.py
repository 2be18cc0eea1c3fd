"""The ONNX backend and its commands: export, run, verify, weights files, determinism."""

import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import QUICK_ZOO, SPECS, zoo_params  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec import SpecError  # noqa: E402
from cnnspec.backends import onnx_io  # noqa: E402
from cnnspec.backends.runtime import session  # noqa: E402
from cnnspec.backends.weights import weight_shapes  # noqa: E402
from cnnspec.cli import main  # noqa: E402

ZOO = sorted(p.stem for p in SPECS.glob("*.cnn"))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", zoo_params(ZOO, quick=QUICK_ZOO))
def test_zoo_exports_checks_runs_and_verifies(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    result = invoke("export", SPECS / f"{name}.cnn", "-o", path)
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(str(path), full_check=True)
    network = cnnspec.load(SPECS / f"{name}.cnn")
    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    output = inferred.graph.output[0].type.tensor_type.shape.dim
    assert output[0].dim_param == "N"
    assert tuple(d.dim_value for d in output[1:]) == network.output_shape
    result = invoke("run", path, "--batch", "2")
    assert result.exit_code == 0, result.output
    assert f"output shape 2x{'x'.join(map(str, network.output_shape))}" in result.output
    result = invoke("verify", SPECS / f"{name}.cnn")
    assert result.exit_code == 0, result.output
    assert "ok tolerance" in result.output


@pytest.mark.parametrize("name", zoo_params(ZOO))
def test_weight_shapes_are_the_torch_state_dict(name):
    network = cnnspec.load(SPECS / f"{name}.cnn")
    state = network.to_torch().state_dict()
    assert weight_shapes(network) == {k: tuple(v.shape) for k, v in state.items()}


def test_initializers_are_named_by_state_dict_keys():
    network = cnnspec.load(SPECS / "resnet18.cnn")
    keys = {k for k in weight_shapes(network) if not k.endswith("num_batches_tracked")}
    unfolded = {t.name for t in network.to_onnx(fold_bn=False).graph.initializer}
    assert unfolded == keys
    folded = {t.name for t in network.to_onnx().graph.initializer}
    # folding moves every batch norm into its conv, which gains a bias under its own key
    convs = [node.path for node in network.graph.layers() if node.kind == "conv"]
    assert folded == {f"{path}.{name}" for path in convs for name in ("weight", "bias")} | {"fc.weight", "fc.bias"}


def test_exports_are_byte_identical(tmp_path):
    for name in ("first", "second"):
        assert invoke("export", SPECS / "resnet18.cnn", "-o", tmp_path / f"{name}.onnx").exit_code == 0
    assert (tmp_path / "first.onnx").read_bytes() == (tmp_path / "second.onnx").read_bytes()


@pytest.mark.parametrize("name", ["resnet18", "lenet5", "efficientnet_b0"])
def test_the_writer_writes_the_serialised_model_and_knows_where_each_tensors_bytes_lie(name):
    import io

    from cnnspec.backends.onnx_write import write_model

    model = cnnspec.load(SPECS / f"{name}.cnn").to_onnx()
    handle = io.BytesIO()
    placements = write_model(model, handle)
    written = handle.getvalue()
    assert written == model.SerializeToString()
    assert len(placements) == len(model.graph.initializer)
    for tensor, placement in zip(model.graph.initializer, placements):
        assert placement.name == tensor.name
        assert written[placement.offset:placement.offset + placement.length] == tensor.raw_data


def test_the_export_check_refuses_what_onnxs_checker_refuses(tmp_path):
    """The check of a written file (its graph with the weights referenced in place, each weight
    checked on its own) fails where onnx.checker.check_model on the whole file fails."""
    from cnnspec.backends.onnx_write import write_model

    good = cnnspec.load(SPECS / "lenet5.cnn").to_onnx()
    broken_graph = onnx.ModelProto()
    broken_graph.CopyFrom(good)
    broken_graph.graph.node[1].input[0] = "nowhere"
    short_weight = onnx.ModelProto()
    short_weight.CopyFrom(good)
    short_weight.graph.initializer[0].raw_data = short_weight.graph.initializer[0].raw_data[:-4]
    wrong_shape = onnx.ModelProto()
    wrong_shape.CopyFrom(good)
    wrong_shape.graph.initializer[0].dims[0] += 1
    for name, model in (("good", good), ("graph", broken_graph), ("short", short_weight), ("shape", wrong_shape)):
        path = tmp_path / f"{name}.onnx"
        with open(path, "wb") as handle:
            placements = write_model(model, handle)
        try:
            onnx.checker.check_model(str(path), full_check=True)
            whole = None
        except Exception as error:
            whole = type(error)
        try:
            onnx_io.check_written(model, path, placements)
            ours = None
        except Exception as error:
            ours = type(error)
        assert (ours is None) == (whole is None) == (name == "good"), (name, ours, whole)
        assert list(tmp_path.glob(".*")) == []  # the graph's copy is removed, checked or not


def test_batch_is_symbolic_unless_fixed(tmp_path):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    x = np.zeros((3, 1, 28, 28), np.float32)
    assert session(network.to_onnx()).run(None, {"x": x})[0].shape == (3, 10)
    fixed = network.to_onnx(batch=4)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".pt"])
def test_weights_files_reach_onnx_by_name(tmp_path, suffix):
    network = cnnspec.load(SPECS / "lenet_gluon.cnn")
    model = network.to_torch(seed=3).eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    elif suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        torch.save(state, path)
    out = tmp_path / "model.onnx"
    result = invoke("export", SPECS / "lenet_gluon.cnn", "-o", out, "--weights", path)
    assert result.exit_code == 0, result.output
    x = torch.randn(2, *network.input_shape)
    with torch.no_grad():
        expected = model(x).numpy()
    actual = session(str(out)).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, **{"0.weight": np.zeros((6, 1, 5, 5), np.float32)})
    result = invoke("export", SPECS / "lenet5.cnn", "-o", tmp_path / "m.onnx", "--weights", path)
    assert result.exit_code == 1
    assert "missing" in result.output and "Traceback" not in result.output


def test_circular_padding_needs_opset_19():
    network = cnnspec.loads("input x: 2x8x8\nconv 4 3x3 pad=1 pad_mode=circular\n")
    with pytest.raises(SpecError) as caught:
        network.to_onnx(opset=18)
    assert caught.value.diagnostics[0].code == "E304"
    assert caught.value.diagnostics[0].span.line == 2
    onnx.checker.check_model(network.to_onnx(opset=19), full_check=True)


def test_run_reads_an_input_file_and_reports_bad_ones(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = invoke("run", SPECS / "lenet5.cnn", "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "y.npy").shape == (1, 10)
    np.save(tmp_path / "bad.npy", np.zeros((2, 3), np.float32))
    result = invoke("run", SPECS / "lenet5.cnn", "--input", tmp_path / "bad.npy")
    assert result.exit_code == 1
    assert "takes (N, 1, 28, 28)" in result.output


def test_large_models_are_written_with_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_io, "EXTERNAL_DATA_BYTES", 1024)
    path = tmp_path / "lenet.onnx"
    result = invoke("export", SPECS / "lenet5.cnn", "-o", path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lenet.onnx.data").exists()
    assert session(str(path)).run(None, {"x": np.zeros((1, 1, 28, 28), np.float32)})[0].shape == (1, 10)


def test_the_largest_difference_is_measured_against_the_largest_value():
    from cnnspec.backends.runtime import compare

    # float32 rounding leaves a difference of the size of the values around a near-zero one:
    # over that value it would be a relative difference of 1; over the largest it is 5e-7
    expected = np.array([[1e-9, 2.0, -1.0]], np.float32)
    actual = np.array([[2e-9, 2.0 + 1e-6, -1.0]], np.float32)
    report = compare(actual, expected)
    difference = np.abs(actual.astype(np.float64) - expected)
    assert report.max_abs == pytest.approx(difference.max())
    assert report.peak == 2.0
    assert report.max_of_peak == pytest.approx(difference.max() / 2.0)
    assert report.relative_l2 == pytest.approx(np.linalg.norm(difference) / np.linalg.norm(expected.astype(np.float64)))


def verify_figures(output: str) -> dict[str, float]:
    """The figures of `cnnspec verify`'s line."""
    import re

    found = re.search(r"max abs diff (\S+) \((\S+) of the largest \|value\|, (\S+)\), relative L2 (\S+) "
                      r"\((ok|over) tolerance (\S+) on the relative L2\)", output)
    assert found, output
    return dict(zip(["max_abs", "of_peak", "peak", "relative_l2"], map(float, found.groups()[:4])),
                verdict=found.group(5), tolerance=float(found.group(6)))


def test_verify_prints_what_pytorch_and_onnxruntime_give(tmp_path):
    from cnnspec.backends.weights import random_weights

    spec = tmp_path / "small.cnn"
    spec.write_text("input x: 3x16x16\nconv 8 3x3 pad=1; bn; relu\nmaxpool 2x2\nconv 4 3x3\navgpool global\n"
                    "flatten\nlinear 10\n")
    result = invoke("verify", spec)
    assert result.exit_code == 0, result.output
    shown = verify_figures(result.output)
    # verify's weights and input, drawn here the same way (seed 0; the input from seed 1)
    network = cnnspec.load(spec)
    weights = random_weights(network, 0, statistics=True)
    model = network.to_torch(memory_budget=None)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy().astype(np.float64)
    actual = session(network.to_onnx(weights=weights)).run(None, {"x": x})[0].astype(np.float64)
    difference = np.abs(actual - expected)
    assert shown["max_abs"] == pytest.approx(difference.max(), rel=1e-2)
    assert shown["peak"] == pytest.approx(np.abs(expected).max(), rel=1e-2)
    assert shown["of_peak"] == pytest.approx(difference.max() / np.abs(expected).max(), rel=1e-2)
    assert shown["relative_l2"] == pytest.approx(np.linalg.norm(difference) / np.linalg.norm(expected), rel=1e-2)
    assert shown["verdict"] == "ok" and shown["tolerance"] == 1e-4
    # the verdict follows the stated tolerance on the relative L2
    strict = invoke("verify", spec, "--tolerance", f"{shown['relative_l2'] / 2:g}")
    assert strict.exit_code == 1 and verify_figures(strict.output)["verdict"] == "over"


@pytest.mark.slow
def test_verify_of_the_fpn_reports_differences_that_mean_something():
    # its outputs hold many values near zero, where an elementwise relative difference was 0.53
    result = invoke("verify", SPECS / "resnet50_fpn.cnn")
    assert result.exit_code == 0, result.output
    shown = verify_figures(result.output)
    assert shown["relative_l2"] < 1e-5 and shown["of_peak"] < 1e-5
    assert shown["max_abs"] == pytest.approx(shown["of_peak"] * shown["peak"], rel=2e-2)
