"""float16 and int8 exports, run in onnxruntime against PyTorch (float16) and against the float32
model (int8), and the calibration data int8 is quantised with."""

import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import SPECS, zoo_params  # noqa: E402
from onnx import TensorProto  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.weights import random_weights  # noqa: E402
from cnnspec.cli import main  # noqa: E402

#: two small zoo networks for the quick run; MobileNetV2 (40 s under int8's calibration), the
#: ResNets (a minute each) and the full-size ones behind the slow marker
NETWORKS = [*zoo_params(["lenet5", "squeezenet1_1"]),
            *(pytest.param(name, marks=pytest.mark.slow) for name in ("mobilenet_v2", "resnet18", "resnet50", "vgg11"))]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def setup(tmp_path, name):
    """The network, its random weights (batch-norm statistics too) in a file, and PyTorch's model."""
    network = cnnspec.load(SPECS / f"{name}.cnn")
    weights = random_weights(network, seed=3, statistics=True)
    path = tmp_path / "weights.npz"
    np.savez(path, **weights)
    model = network.to_torch(memory_budget=None)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return network, path, model.eval()


def relative_l2(actual, expected) -> float:
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


def run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("keep_io_types", [False, True])
@pytest.mark.parametrize("name", NETWORKS)
def test_fp16_runs_within_the_stated_tolerance_of_pytorch(tmp_path, name, keep_io_types):
    network, weights, model = setup(tmp_path, name)
    path = tmp_path / "model.onnx"
    flags = ["--keep-io-types"] if keep_io_types else []
    result = invoke("export", SPECS / f"{name}.cnn", "--weights", weights, "--fp16", *flags, "-o", path)
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(str(path), full_check=True)
    stored = onnx.load(str(path))
    # every weight is float16; the types of the file's tensors follow
    assert {t.data_type for t in stored.graph.initializer} <= {TensorProto.FLOAT16, TensorProto.INT64}
    io_type = TensorProto.FLOAT if keep_io_types else TensorProto.FLOAT16
    assert stored.graph.input[0].type.tensor_type.elem_type == io_type
    assert stored.graph.output[0].type.tensor_type.elem_type == io_type
    assert {p.key: p.value for p in stored.metadata_props}["cnnspec.precision"] == "float16"
    onnx.shape_inference.infer_shapes(stored, strict_mode=True, check_type=True)
    x = np.random.default_rng(0).standard_normal((2, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    actual = run(path, x if keep_io_types else x.astype(np.float16))
    assert actual.dtype == (np.float32 if keep_io_types else np.float16)
    assert relative_l2(actual, expected) <= 1e-2
    result = invoke("verify", SPECS / f"{name}.cnn", "--weights", weights, "--fp16", *flags)
    assert result.exit_code == 0, result.output
    assert result.output.endswith("(ok tolerance 0.01 on the relative L2)\n")


def calibration_folder(tmp_path, network, count=12):
    """`.npy` samples, some one at a time and some as a batch: smooth random fields, nearer to
    pictures than white noise."""
    folder = tmp_path / "calibration"
    folder.mkdir()
    rng = np.random.default_rng(1)
    c, h, w = network.input_shape
    coarse = rng.standard_normal((count, c, 4, 4)).astype(np.float32)
    samples = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bilinear").numpy()
    for i in range(count // 2):
        np.save(folder / f"sample{i:02d}.npy", samples[i])
    np.save(folder / "batch.npy", samples[count // 2:])
    return folder


@pytest.mark.parametrize("name", NETWORKS)
def test_int8_is_quantised_per_channel_and_verify_reports_its_distance(tmp_path, name):
    network, weights, _ = setup(tmp_path, name)
    folder = calibration_folder(tmp_path, network)
    path, float_path = tmp_path / "int8.onnx", tmp_path / "float32.onnx"
    result = invoke("export", SPECS / f"{name}.cnn", "--weights", weights, "--int8", "--calibrate", folder, "-o", path)
    assert result.exit_code == 0, result.output
    assert invoke("export", SPECS / f"{name}.cnn", "--weights", weights, "-o", float_path).exit_code == 0
    onnx.checker.check_model(str(path), full_check=True)
    stored = onnx.load(str(path))
    ops = {node.op_type for node in stored.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    convs = [node for node in stored.graph.node if node.op_type == "Conv"]
    initializers = {t.name: t for t in stored.graph.initializer}
    producers = {out: node for node in stored.graph.node for out in node.output}
    for conv in convs:
        dequantise = producers[conv.input[1]]
        weight, scale = initializers[dequantise.input[0]], initializers[dequantise.input[1]]
        assert weight.data_type == TensorProto.INT8
        # one scale per output channel
        assert list(scale.dims) == [weight.dims[0]]
    assert {p.key: p.value for p in stored.metadata_props}["cnnspec.precision"] == "int8"
    # every tensor a node makes has its shape, the quantiser's ones too
    outputs = {v.name for v in stored.graph.output}
    assert {o for n in stored.graph.node for o in n.output} - outputs == {v.name for v in stored.graph.value_info}
    # the figures verify prints, measured here on the same samples with the two files
    samples = np.concatenate([np.atleast_1d(np.load(p))[None] if np.load(p).ndim == 3 else np.load(p)
                              for p in sorted(folder.iterdir())]).astype(np.float32)
    quantised, reference = run(path, samples), run(float_path, samples)
    agreement = np.mean(quantised.argmax(1) == reference.argmax(1))
    error = relative_l2(quantised, reference)
    assert error < 0.5
    result = invoke("verify", SPECS / f"{name}.cnn", "--weights", weights, "--int8", "--calibrate", folder)
    assert result.exit_code == 0, result.output
    assert (f"int8 against float32 on {len(samples)} calibration samples: top-1 agreement {agreement:.1%}, "
            f"relative L2 {error:.3g}") in result.output


def test_int8_export_is_byte_identical(tmp_path):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    folder = calibration_folder(tmp_path, network)
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    for path in (first, second):
        assert invoke("export", SPECS / "lenet5.cnn", "--int8", "--calibrate", folder, "-o", path).exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_int8_without_calibration_data_refuses(tmp_path):
    path = tmp_path / "m.onnx"
    result = invoke("export", SPECS / "lenet5.cnn", "--int8", "-o", path)
    assert result.exit_code == 2 and not path.exists()
    assert result.output.splitlines()[-1] == ("Error: --int8 needs calibration data (--calibrate), samples of what the "
                                              "model will see: a folder of .npy arrays or images, or a .npz")
    result = invoke("verify", SPECS / "lenet5.cnn", "--int8")
    assert result.exit_code == 2 and "--int8 needs calibration data (--calibrate)" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--fp16", "--int8"], "give either --fp16 or --int8"),
    (["--keep-io-types"], "--keep-io-types keeps float32 inputs and outputs around a --fp16 model"),
    (["--calibrate", "{npz}"], "--calibrate gives the data of --int8's calibration"),
])
def test_contradictory_precision_options_are_usage_errors(tmp_path, args, message):
    npz = tmp_path / "data.npz"
    np.savez(npz, x=np.zeros((2, 1, 28, 28), np.float32))
    result = invoke("export", SPECS / "lenet5.cnn", "-o", tmp_path / "m.onnx", *[a.format(npz=npz) for a in args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "holds no .npy arrays or images to calibrate on"),
    (lambda d: np.save(d / "a.npy", np.zeros((3, 28, 28), np.float32)), "a.npy holds an array of shape (3, 28, 28)"),
    (lambda d: (d / "b.npy").write_text("not an array"), "cannot read"),
    (lambda d: (d / "c.png").write_text("not an image"), "cannot read the image"),
])
def test_unusable_calibration_data_are_one_line(tmp_path, make, message):
    folder = tmp_path / "data"
    folder.mkdir()
    make(folder)
    result = invoke("export", SPECS / "lenet5.cnn", "--int8", "--calibrate", folder, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and message in result.output, result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "m.onnx").exists()


def test_calibration_reads_npz_and_images_with_the_preprocessing(tmp_path):
    from PIL import Image

    from cnnspec.backends.metadata import Preprocessing
    from cnnspec.backends.quantise import calibration_arrays

    arrays = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "data.npz", first=arrays[:2], second=arrays[2], third=arrays[3:])
    assert np.array_equal(calibration_arrays(tmp_path / "data.npz", (1, 28, 28)), arrays)
    folder = tmp_path / "pictures"
    folder.mkdir()
    pixels = np.random.default_rng(1).integers(0, 256, (3, 40, 60, 3)).astype(np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / f"{i}.png")
    preprocessing = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), resize=(32,))
    samples = calibration_arrays(folder, (3, 32, 32), preprocessing)
    # by hand: the shorter side to 32 (40x60 -> 32x48), the centre 32x32, scaled and normalised
    for sample, p in zip(samples, pixels):
        image = np.asarray(Image.fromarray(p).resize((48, 32), Image.BILINEAR), np.float32)[:, 8:40] / 255
        expected = ((image - [0.5, 0.4, 0.3]) / [0.2, 0.25, 0.3]).transpose(2, 0, 1)
        np.testing.assert_allclose(sample, expected, rtol=1e-6, atol=1e-6)


def test_fp16_refuses_a_weight_float16_cannot_hold(tmp_path):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    weights = random_weights(network, seed=0)
    key = next(iter(weights))
    weights[key] = weights[key] * 0 + 1e6
    np.savez(tmp_path / "w.npz", **weights)
    result = invoke("export", SPECS / "lenet5.cnn", "--weights", tmp_path / "w.npz", "--fp16", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 1 and f"`{key}` holds 1e+06, more than float16's largest value" in result.output


def test_run_feeds_a_float16_model_float16(tmp_path):
    path = tmp_path / "lenet5.onnx"
    assert invoke("export", SPECS / "lenet5.cnn", "--fp16", "-o", path).exit_code == 0
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = invoke("run", path, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "y.npy"), run(path, x.astype(np.float16)))


def session_output(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("keep_io_types", [False, True])
def test_to_onnx_fp16_runs_within_the_stated_tolerance_of_pytorch_and_is_what_export_writes(tmp_path, keep_io_types):
    network, weights, model = setup(tmp_path, "squeezenet1_1")
    state = dict(np.load(weights))
    built = network.to_onnx(weights=state, precision="float16", keep_io_types=keep_io_types)
    io_type = TensorProto.FLOAT if keep_io_types else TensorProto.FLOAT16
    assert built.graph.input[0].type.tensor_type.elem_type == io_type
    assert {t.data_type for t in built.graph.initializer} <= {TensorProto.FLOAT16, TensorProto.INT64}
    assert {p.key: p.value for p in built.metadata_props}["cnnspec.precision"] == "float16"
    x = np.random.default_rng(0).standard_normal((2, *network.input_shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    actual = session_output(built, x if keep_io_types else x.astype(np.float16))
    assert relative_l2(actual, expected) <= 1e-2
    # the CLI's file is the same model, byte for byte
    path = tmp_path / "model.onnx"
    flags = ["--keep-io-types"] if keep_io_types else []
    assert invoke("export", SPECS / "squeezenet1_1.cnn", "--weights", weights, "--fp16", *flags, "-o", path).exit_code == 0
    assert onnx.load(str(path)).SerializeToString() == built.SerializeToString()


def test_to_onnx_int8_calibrated_on_an_array_is_what_export_writes_from_the_same_samples(tmp_path):
    network, weights, _ = setup(tmp_path, "lenet5")
    state = dict(np.load(weights))
    folder = calibration_folder(tmp_path, network)
    samples = np.concatenate([np.load(p)[None] if np.load(p).ndim == 3 else np.load(p)
                              for p in sorted(folder.iterdir())]).astype(np.float32)
    built = network.to_onnx(weights=state, precision="int8", calibration=samples)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in built.graph.node}
    assert {p.key: p.value for p in built.metadata_props}["cnnspec.precision"] == "int8"
    # a folder gives the same model as its samples in one array
    assert network.to_onnx(weights=state, precision="int8", calibration=folder).SerializeToString() \
        == built.SerializeToString()
    path = tmp_path / "int8.onnx"
    assert invoke("export", SPECS / "lenet5.cnn", "--weights", weights, "--int8", "--calibrate", folder,
                  "-o", path).exit_code == 0
    assert onnx.load(str(path)).SerializeToString() == built.SerializeToString()
    # as close to the float32 model as the CLI's export test asks
    reference = session_output(network.to_onnx(weights=state), samples)
    assert relative_l2(session_output(built, samples), reference) < 0.5


@pytest.mark.parametrize("options, error", [
    (dict(precision="bfloat16"), "`precision` is float32, float16 or int8, not 'bfloat16'"),
    (dict(keep_io_types=True), "`keep_io_types` keeps float32 inputs and outputs around a float16 model"),
    (dict(precision="float16", calibration="data"), "`calibration` gives the data of int8's calibration"),
    (dict(precision="int8"), "int8 needs calibration data (`calibration`)"),
    (dict(precision="int8", calibration=np.zeros((2, 3, 28, 28))), "holds an array of shape (2, 3, 28, 28)"),
])
def test_to_onnx_refuses_contradictory_precision_options(options, error):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    with pytest.raises(ValueError) as raised:
        network.to_onnx(**options)
    assert error in str(raised.value)
