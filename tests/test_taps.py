"""`cnnspec taps`: the course's filter exercise on a synthetic picture (a bright square on a dark
field) through the shipped frozen-kernel specs, the grids of maps and kernels, and the errors."""

import importlib.util

import pytest
from click.testing import CliRunner
from conftest import SPECS

import cnnspec
from cnnspec.cli import main

np = pytest.importorskip("numpy", reason="numpy is not installed (the torch extra)")
pytest.importorskip("torch", reason="PyTorch is not installed (the torch extra)")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the images extra)")

from cnnspec.draw.taps import KERNEL_TILE, MARGIN, TITLE, feature_maps, read_image  # noqa: E402

FILTERS = SPECS / "filters"
#: the square: rows TOP..BOTTOM-1, columns LEFT..RIGHT-1 of a 256x256 field
TOP, BOTTOM, LEFT, RIGHT = 96, 160, 80, 176


def picture(path, speckle=0):
    """The square on its field as an 8-bit PNG, with seeded noise of up to `speckle` grey levels."""
    field = np.full((256, 256), 20, dtype=np.int16)
    field[TOP:BOTTOM, LEFT:RIGHT] = 230
    field += np.random.default_rng(0).integers(-speckle, speckle + 1, field.shape, dtype=np.int16)
    Image.fromarray(field.astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    return picture(tmp_path_factory.mktemp("taps") / "square.png")


@pytest.fixture(scope="module")
def speckled(tmp_path_factory):
    # a step's total variation survives a blur (its ramp climbs as far); texture's does not
    return picture(tmp_path_factory.mktemp("taps") / "speckled.png", speckle=12)


def response(name, square):
    network = cnnspec.load(FILTERS / f"{name}.cnn")
    image = read_image(square, network.input_shape)
    layer = network.rows[-1].path
    return image[0], feature_maps(network, image, [layer])[layer][0]


def total_variation(a) -> float:
    """The sum of absolute differences between neighbouring pixels, across and down."""
    return float(np.abs(np.diff(a, axis=0)).sum() + np.abs(np.diff(a, axis=1)).sum())


def test_the_picture_is_read_at_the_input_size(square):
    image = read_image(square, (1, 128, 128))
    assert image.shape == (1, 128, 128) and image.dtype == np.float32
    assert image.min() == pytest.approx(20 / 255) and image.max() == pytest.approx(230 / 255)
    colour = read_image(square, (3, 256, 256))
    assert colour.shape == (3, 256, 256) and (colour[0] == colour[2]).all()


def test_vertical_edges_respond_at_the_left_and_right_sides_only(square):
    _, out = response("sobel_vertical", square)
    rows, columns = np.nonzero(np.abs(out) > 1e-6)
    # the columns on either side of each edge, along the square's rows (and one beyond at the corners)
    assert set(columns) == {LEFT - 1, LEFT, RIGHT - 1, RIGHT}
    assert rows.min() == TOP - 1 and rows.max() == BOTTOM
    # dark to bright on the left is positive, bright to dark on the right negative: 4 * 210/255 in full
    middle = (TOP + BOTTOM) // 2
    assert out[middle, LEFT] == pytest.approx(4 * 210 / 255, rel=1e-5) and out[middle, RIGHT - 1] < 0


def test_horizontal_edges_respond_at_the_top_and_bottom_only(square):
    _, out = response("sobel_horizontal", square)
    rows, columns = np.nonzero(np.abs(out) > 1e-6)
    assert set(rows) == {TOP - 1, TOP, BOTTOM - 1, BOTTOM}
    assert columns.min() == LEFT - 1 and columns.max() == RIGHT


def test_blur_smooths_and_sharpen_roughens(square, speckled):
    image, blurred = response("box_blur", speckled)
    _, sharpened = response("sharpen", speckled)
    assert total_variation(blurred) < 0.6 * total_variation(image)
    assert total_variation(sharpened) > 1.5 * total_variation(image)
    # without texture: flat areas keep their brightness under both (the kernels sum to 1), and
    # sharpening overshoots the edge beyond the picture's range
    image, blurred = response("box_blur", square)
    _, sharpened = response("sharpen", square)
    assert blurred[10, 10] == pytest.approx(image[10, 10]) and sharpened[128, 128] == pytest.approx(image[128, 128])
    assert sharpened.max() > image.max() and sharpened.min() < image.min()
    assert total_variation(sharpened) > total_variation(image)


def test_taps_writes_a_grid_of_the_maps(square, tmp_path):
    out = tmp_path / "maps.png"
    spec = SPECS / "resnet18.cnn"
    result = CliRunner().invoke(main, ["taps", str(spec), "--image", str(square), "--layer", "conv1,layer1",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    # two sheets of 64 channels of 112x112 and 56x56 maps (the second magnified to 112) in 8 columns
    assert sheet.shape == (2 * (TITLE + 8 * (112 + MARGIN) + MARGIN), 8 * (112 + MARGIN) + MARGIN)
    tile = sheet[TITLE + MARGIN:TITLE + MARGIN + 112, MARGIN:MARGIN + 112]
    assert tile.min() == 0 and tile.max() == 255  # each channel stretched to the full range


def test_kernels_grid_shows_the_literal_kernel(tmp_path):
    out = tmp_path / "kernels.png"
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sobel_vertical.cnn"), "--kernels", "edges",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out)).astype(int)
    cell = KERNEL_TILE // 3
    centres = [[sheet[TITLE + MARGIN + r * cell + cell // 2, MARGIN + c * cell + cell // 2] for c in range(3)]
               for r in range(3)]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    assert centres == np.round(128 + 127 * sobel / 2).astype(int).tolist()


@pytest.mark.parametrize("args, message", [
    (["--image", "{missing}", "--layer", "edges"], "cannot read the image"),
    (["--image", "{square}", "--layer", "edge"], "did you mean `edges`"),
    (["--kernels", "nothing"], "is not a conv layer"),
])
def test_errors_are_one_line(args, message, square, tmp_path):
    args = [a.format(missing=tmp_path / "none.png", square=square) for a in args]
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sobel_vertical.cnn"), *args, "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sobel_vertical.cnn"), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2 and "--kernels" in result.output


@pytest.mark.parametrize("module, extra", [("torch", "cnnspec[torch]"), ("PIL", "cnnspec[images]")])
def test_missing_libraries_name_the_extra(module, extra, monkeypatch, square, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sharpen.cnn"), "--image", str(square),
                                       "--layer", "sharpened", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2 and f'pip install "{extra}"' in result.output
    assert result.output.count("\n") == 1


def test_weights_replace_the_literal_kernel(square, tmp_path):
    """With --weights, the kernels are the file's: an identity kernel passes the picture through."""
    identity = np.zeros((1, 1, 3, 3), dtype=np.float32)
    identity[0, 0, 1, 1] = 1
    weights = tmp_path / "identity.npz"
    np.savez(weights, **{"edges.weight": identity})
    network = cnnspec.load(FILTERS / "sobel_vertical.cnn")
    image = read_image(square, network.input_shape)
    out = feature_maps(network, image, ["edges"], weights)["edges"]
    assert np.array_equal(out, image)
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sobel_vertical.cnn"), "--kernels", "edges",
                                       "--weights", str(weights), "-o", str(tmp_path / "k.png")])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(tmp_path / "k.png")).astype(int)
    cell = KERNEL_TILE // 3
    assert sheet[TITLE + MARGIN + cell + cell // 2, MARGIN + cell + cell // 2] == 255
    assert sheet[TITLE + MARGIN + cell // 2, MARGIN + cell // 2] == 128
    np.savez(weights, **{"edges.weight": identity[:, :, :2]})
    result = CliRunner().invoke(main, ["taps", str(FILTERS / "sobel_vertical.cnn"), "--kernels", "edges",
                                       "--weights", str(weights), "-o", str(tmp_path / "k.png")])
    assert result.exit_code == 1 and "expected (1, 1, 3, 3)" in result.output


TWO_EYES = """input left: 1x32x32
input right: 1x32x32
edges: conv 1 3x3 pad=1 weights=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] frozen bias=false
r = right -> use edges
"""


def test_a_network_of_two_inputs_takes_a_picture_for_each_in_order(square, tmp_path):
    """Two pictures for two inputs, in their order: the filter's map is its response to the left."""
    from PIL import ImageOps

    flipped = tmp_path / "inverted.png"
    ImageOps.invert(Image.open(square).convert("L")).save(flipped)
    spec = tmp_path / "two.cnn"
    spec.write_text(TWO_EYES)
    network = cnnspec.load(spec)
    from cnnspec.draw.taps import read_images

    left, right = read_images(network, [square, flipped])
    maps = feature_maps(network, [left, right], ["edges"])
    np.testing.assert_allclose(maps["edges"], torch_conv(left), atol=1e-5)
    assert not np.allclose(maps["edges"], torch_conv(right), atol=1e-3)
    out = tmp_path / "two.png"
    result = CliRunner().invoke(main, ["taps", str(spec), "--image", str(square), "--image", str(flipped),
                                       "--layer", "edges", "-o", str(out)])
    assert result.exit_code == 0, result.output
    one = CliRunner().invoke(main, ["taps", str(spec), "--image", str(square), "--layer", "edges", "-o", str(out)])
    assert one.exit_code == 1 and "takes 2 inputs (left, right): give --image once for each" in one.output
    assert "Traceback" not in one.output


def torch_conv(image):
    """The Sobel filter applied with PyTorch directly, as the spec writes it."""
    import torch

    kernel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
    return torch.nn.functional.conv2d(torch.from_numpy(image)[None], kernel, padding=1)[0].numpy()
