"""Exporting for deployment: the metadata in the file, `run --image` with the stored
preprocessing and labels, the default output name."""

import hashlib
import importlib.metadata

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the images extra)")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest import SPECS  # noqa: E402

import cnnspec  # noqa: E402
from cnnspec.backends.deploy import Deployment  # noqa: E402
from cnnspec.backends.metadata import KEYS, OptionError, Preprocessing  # noqa: E402
from cnnspec.cli import DEPLOYMENT_FLAGS, main  # noqa: E402

RESNET = SPECS / "resnet18.cnn"
LABELS = [f"class {i}" for i in range(1000)]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(LABELS) + "\n")
    return path


@pytest.fixture
def picture(tmp_path):
    """A 300x200 RGB picture: smooth gradients, so resizing and cropping matter."""
    rows, columns = np.mgrid[0:200, 0:300]
    pixels = np.stack([rows * 255 // 199, columns * 255 // 299, (rows + columns) * 255 // 498], axis=-1)
    path = tmp_path / "picture.png"
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def metadata(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_metadata_round_trips(tmp_path, labels):
    path = tmp_path / "resnet18.onnx"
    result = invoke("export", RESNET, "-o", path, "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225",
                    "--resize", "256", "--channel-order", "RGB", "--labels", labels)
    assert result.exit_code == 0, result.output
    props = metadata(path)
    assert list(props) == [k for k in KEYS if k in props]
    assert props["cnnspec.spec"] == "resnet18"
    assert props["cnnspec.spec_sha256"] == hashlib.sha256(RESNET.read_bytes()).hexdigest()
    assert props["cnnspec.version"] == importlib.metadata.version("cnnspec")
    assert props["cnnspec.input_layout"] == "NCHW"
    assert props["cnnspec.precision"] == "float32"
    assert props["cnnspec.labels"].split("\n") == LABELS
    assert Preprocessing.from_properties(props) == Preprocessing(mean=(0.485, 0.456, 0.406),
                                                                 std=(0.229, 0.224, 0.225), resize=(256,),
                                                                 channel_order="RGB")
    # onnxruntime reads the same
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert dict(sess.get_modelmeta().custom_metadata_map) == props
    # and the file stays byte-identical run to run
    again = tmp_path / "again.onnx"
    invoke("export", RESNET, "-o", again, "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225",
           "--resize", "256", "--channel-order", "RGB", "--labels", labels)
    assert again.read_bytes() == path.read_bytes()


def test_without_options_the_file_states_what_it_is(tmp_path):
    path = tmp_path / "lenet5.onnx"
    assert invoke("export", SPECS / "lenet5.cnn", "-o", path).exit_code == 0
    assert set(metadata(path)) == {"cnnspec.spec", "cnnspec.spec_sha256", "cnnspec.version",
                                   "cnnspec.input_layout", "cnnspec.precision"}


def test_output_defaults_to_the_network_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("export", SPECS / "lenet5.cnn")
    assert result.exit_code == 0, result.output
    assert "wrote lenet5.onnx" in result.output
    onnx.checker.check_model(str(tmp_path / "lenet5.onnx"), full_check=True)


def expected_input(picture, mean, std, bgr=False):
    """The preprocessing written out independently: shorter side to 256 (bilinear), centre 224x224."""
    with Image.open(picture) as image:
        width, height = image.size
        scale = 256 / min(width, height)
        image = image.convert("RGB").resize((round(width * scale), round(height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    x = np.asarray(image, np.float32)[top:top + 224, left:left + 224] / 255.0
    if bgr:
        x = x[..., ::-1]
    return ((x - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1)[None]


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_run_image_applies_the_stored_preprocessing_and_names_the_top_5(tmp_path, labels, picture, order):
    path = tmp_path / "resnet18.onnx"
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    result = invoke("export", RESNET, "-o", path, "--mean", ",".join(map(str, mean)), "--std", ",".join(map(str, std)),
                    "--resize", "256", "--channel-order", order, "--labels", labels)
    assert result.exit_code == 0, result.output
    result = invoke("run", path, "--image", picture, "-o", tmp_path / "scores.npy")
    assert result.exit_code == 0, result.output
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores = sess.run(None, {"x": expected_input(picture, mean, std, bgr=order == "BGR")})[0]
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), scores, rtol=1e-5, atol=1e-5)
    top = np.argsort(scores[0])[::-1][:5]
    assert result.output.splitlines()[0] == "output shape 1x1000"
    shown = result.output.splitlines()[1]
    assert shown.startswith(f"sample 0: top-5 {top[0]} class {top[0]} (")
    assert [int(part.split(" ")[-1]) for part in shown.split(" class ")[:-1]] == [int(c) for c in top]


def test_run_image_on_a_grey_network_without_preprocessing(tmp_path, picture):
    """Without stored preprocessing the picture is resized to the input and scaled to [0, 1]."""
    path = tmp_path / "lenet5.onnx"
    invoke("export", SPECS / "lenet5.cnn", "-o", path)
    result = invoke("run", path, "--image", picture, "-o", tmp_path / "y.npy")
    assert result.exit_code == 0, result.output
    with Image.open(picture) as image:
        x = np.asarray(image.convert("L").resize((28, 28), Image.BILINEAR), np.float32)[None, None] / 255.0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), sess.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--mean", "0.5,0.5"], "--mean gives 2 values; the input has 3 channels"),
    (["--std", "0,1,1"], "--std must be positive"),
    (["--mean", "a,b"], "expected numbers separated by commas"),
    (["--resize", "100"], "--resize 100 is smaller than the input's side 224"),
    (["--resize", "3x4x5"], "expected a size S (the shorter side) or HxW"),
    (["--channel-order", "L"], "--channel-order L does not fit an input of 3 channels"),
    (["--labels", "{short}"], "holds 2 labels; the network has 1000 outputs"),
])
def test_bad_deployment_options_are_one_line(tmp_path, args, message):
    short = tmp_path / "short.txt"
    short.write_text("cat\ndog\n")
    args = [a.format(short=short) for a in args]
    result = invoke("export", RESNET, "-o", tmp_path / "m.onnx", *args)
    assert result.exit_code in (1, 2) and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.onnx").exists()


#: LeNet-5's ten classes under names that are not their numbers
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.mark.parametrize("given", ["list", "file"])
def test_to_onnx_stores_labels_as_export_does_and_run_names_the_top_5(tmp_path, picture, given):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    listed = tmp_path / "digits.txt"
    listed.write_text("\n".join(DIGITS) + "\n")
    model = network.to_onnx(labels=list(DIGITS) if given == "list" else listed)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["cnnspec.labels"].split("\n") == list(DIGITS)
    # the same file as `export --labels` writes
    exported = tmp_path / "exported.onnx"
    assert invoke("export", SPECS / "lenet5.cnn", "--labels", listed, "-o", exported).exit_code == 0
    assert exported.read_bytes() == model.SerializeToString()
    path = tmp_path / "lenet5.onnx"
    onnx.save(model, str(path))
    result = invoke("run", path, "--image", picture)
    assert result.exit_code == 0, result.output
    with Image.open(picture) as image:
        x = np.asarray(image.convert("L").resize((28, 28), Image.BILINEAR), np.float32)[None, None] / 255.0
    scores = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0][0]
    top = np.argsort(scores)[::-1][:5]
    shown = result.output.splitlines()[1]
    assert shown.startswith("sample 0: top-5 ")
    assert [part.rsplit(" (", 1)[0] for part in shown[len("sample 0: top-5 "):].split("), ")] == \
        [f"{c} {DIGITS[c]}" for c in top]


@pytest.mark.parametrize("options, message", [
    (dict(labels=["cat", "dog"]), "`labels` holds 2 labels; the network has 10 outputs"),
    (dict(labels=["cat\ndog", *DIGITS[2:]]), "`labels` holds a label of several lines"),
    (dict(preprocessing=Preprocessing(mean=(0.5, 0.5))), "`mean` gives 2 values; the input has 1 channels"),
    (dict(preprocessing=Preprocessing(channel_order="RGB")), "`channel_order` RGB does not fit an input of 1 channel"),
    (dict(keep_io_types=True), "`keep_io_types` keeps float32 inputs and outputs around a float16 model"),
])
def test_to_onnx_names_the_parameter_that_does_not_fit(options, message):
    network = cnnspec.load(SPECS / "lenet5.cnn")
    with pytest.raises(OptionError) as raised:
        network.to_onnx(**options)
    assert message in str(raised.value)


def test_every_deployment_option_has_one_flag():
    from dataclasses import fields

    options = {f.name for f in fields(Deployment) if f.init} - {"precision", "preprocessing"}
    options |= {f.name for f in fields(Preprocessing)} | {"float16", "int8"}
    assert set(DEPLOYMENT_FLAGS) == options
    error = OptionError("{keep_io_types} keeps float32 inputs and outputs around a {float16} model")
    assert error.worded(DEPLOYMENT_FLAGS) == "--keep-io-types keeps float32 inputs and outputs around a --fp16 model"
    assert str(error) == "`keep_io_types` keeps float32 inputs and outputs around a float16 model"


def test_run_image_refuses_what_is_not_a_picture(tmp_path):
    path = tmp_path / "lenet5.onnx"
    invoke("export", SPECS / "lenet5.cnn", "-o", path)
    text = tmp_path / "not.png"
    text.write_text("hello")
    result = invoke("run", path, "--image", text)
    assert result.exit_code == 1 and "cannot read the image" in result.output
    assert result.output.count("\n") == 1
    result = invoke("run", path, "--image", text, "--random")
    assert result.exit_code == 1 and "give one of --input, --image and --random" in result.output


def test_the_documented_keys_are_the_table():
    from conftest import ROOT

    text = (ROOT / "docs" / "deployment.md").read_text()
    table = text.split("<!-- keys -->")[1].split("<!-- /keys -->")[0]
    rows = [line.split(" | ", 1) for line in table.strip().splitlines()[2:]]
    assert {key.strip("| `"): value.rstrip(" |") for key, value in rows} == KEYS


@pytest.mark.parametrize("text, layout", [("input x: 3\nlinear 2\n", "NC"), ("input x: 2x8\nconv 2 3\n", "NCL"),
                                          ("input x: 1x4x4x4\nconv 2 3\n", "NCDHW")])
def test_the_input_layout_names_every_rank_of_input(tmp_path, text, layout):
    spec = tmp_path / "net.cnn"
    spec.write_text(text)
    path = tmp_path / "net.onnx"
    result = invoke("export", spec, "-o", path)
    assert result.exit_code == 0, result.output
    assert metadata(path)["cnnspec.input_layout"] == layout
    # one letter per axis of the input onnxruntime reads
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(sess.get_inputs()[0].shape) == len(layout)
