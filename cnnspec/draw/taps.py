"""`cnnspec taps`: what layers make of a picture, and what a conv's kernels look like.

The network runs in PyTorch (eval mode) on an image read with Pillow, resized to the spec's
input and made greyscale or RGB as its channels say; each chosen layer's output becomes a grid
of its channels, each normalised for display on its own,

    pixel = 255 * (a - min a) / (max a - min a)     (a constant channel is mid-grey),

titled with the layer's name and shape (text by Pillow's ImageDraw). A conv's kernels are drawn
on one scale for the whole layer, so that signs and sizes compare: 0 is mid-grey,

    pixel = 128 + 127 * w / max |w|.
"""

from __future__ import annotations

from cnnspec.layers import REGISTRY
from cnnspec.layers.base import describe_shape

#: a small map is magnified to at least this many pixels a side; a grid is this many tiles wide
TILE, COLUMNS, MAX_CHANNELS = 96, 8, 64
KERNEL_TILE = 48
MARGIN, TITLE = 6, 18


class TapsError(Exception):
    """A picture or a layer that cannot be used; the message says which and why."""


def read_image(path, shape):
    """The picture as a float array (C, H, W) in [0, 1] at the input's size."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise TapsError(f"the input {describe_shape(shape)} is not a 1- or 3-channel image (CxHxW)")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if shape[0] == 1 else "RGB").resize((shape[2], shape[1]), Image.BILINEAR)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise TapsError(f"cannot read the image {path}: {error}") from None
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def model_for(network, outputs, weights_path=None):
    """The network in eval mode returning `outputs` by name, with the given weights if any."""
    import torch

    from cnnspec.backends.weights import WeightsError, load_weights, prepare_weights

    try:
        model = network.to_torch(seed=0, outputs=list(outputs) if outputs else None)
    except ValueError as error:
        raise TapsError(str(error)) from None
    if weights_path is not None:
        try:
            arrays = prepare_weights(network, load_weights(weights_path))
        except (WeightsError, OSError, ValueError) as error:
            raise TapsError(str(error)) from None
        model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False)
    return model.eval()


def feature_maps(network, images, layers, weights_path=None) -> dict:
    """Each named layer's output for one picture per input (an array, or a list of them in the
    inputs' order), as numpy arrays without the batch axis."""
    import torch

    images = images if isinstance(images, (list, tuple)) else [images]
    model = model_for(network, layers, weights_path)
    with torch.no_grad():
        out = model(*(torch.from_numpy(image)[None] for image in images))
    return {name: out[name][0].numpy() for name in layers}


def read_images(network, paths) -> list:
    """One picture per input of the network, each at its input's size."""
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
    inputs = network.input_shapes or {network.graph.input_name: network.input_shape}
    if len(paths) != len(inputs):
        names = ", ".join(inputs)
        raise TapsError(f"`{network.name}` takes {len(inputs)} input{'s' * (len(inputs) > 1)} ({names}): give --image "
                        f"once for each, in that order ({len(paths)} given)")
    return [read_image(path, shape) for path, shape in zip(paths, inputs.values())]


def normalised(channel):
    """One channel as 8-bit grey, stretched from its minimum to its maximum."""
    import numpy as np

    low, high = float(channel.min()), float(channel.max())
    if high - low < 1e-12:
        return np.full(channel.shape, 128, dtype=np.uint8)
    return np.round(255 * (channel - low) / (high - low)).astype(np.uint8)


def _as_maps(array):
    """(channels, H, W): a flat vector is one row of positions, a 1-D map one row per channel."""
    if array.ndim == 1:
        return array[None, None, :]
    if array.ndim == 2:
        return array[:, None, :]
    if array.ndim == 4:  # 3-D maps: the middle slice
        return array[:, array.shape[1] // 2]
    return array


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", 12)
    except OSError:
        return ImageFont.load_default(size=12)


def _tiles(title: str, tiles, tile_size):
    """A titled grid of PIL images, each scaled (nearest) to fit `tile_size`."""
    from PIL import Image, ImageDraw

    columns = min(COLUMNS, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    h0, w0 = tiles[0].size[1], tiles[0].size[0]
    scale = -(-tile_size // max(h0, w0))  # the smallest whole magnification reaching the tile's size
    w, h = w0 * scale, h0 * scale
    font = _font()
    width = max(columns * (w + MARGIN) + MARGIN, int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(title, font)) + 2 * MARGIN)
    sheet = Image.new("L", (width, TITLE + rows * (h + MARGIN) + MARGIN), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 3), title, fill=0, font=font)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet.paste(tile.resize((w, h), Image.NEAREST), (MARGIN + c * (w + MARGIN), TITLE + MARGIN + r * (h + MARGIN)))
    return sheet


def stack(sheets):
    """Sheets one under the other on white."""
    from PIL import Image

    width, height = max(s.width for s in sheets), sum(s.height for s in sheets)
    page = Image.new("L", (width, height), 255)
    y = 0
    for sheet in sheets:
        page.paste(sheet, (0, y))
        y += sheet.height
    return page


def maps_sheet(name: str, array):
    """One layer's output as a titled grid of its first `MAX_CHANNELS` channels."""
    from PIL import Image

    maps = _as_maps(array)
    shown = maps[:MAX_CHANNELS]
    title = f"{name}  {describe_shape(array.shape)}" + (f"  (first {MAX_CHANNELS} channels)" if len(maps) > MAX_CHANNELS else "")
    return _tiles(title, [Image.fromarray(normalised(c)) for c in shown], TILE)


def has_kernels(node) -> bool:
    """Whether a layer saves spatial kernels: a `weight` of (out, in, *kernel), as convs do."""
    return any(t.key == "weight" and len(t.shape) >= 3 for t in REGISTRY[node.kind].state(node.params, node.in_shape))


def kernels_sheet(network, name: str, weights_path=None):
    """A conv's kernels, one tile per (output, input) channel pair, on one scale."""
    import numpy as np
    from PIL import Image

    node = next((n for n in network.graph.layers() if n.path == name), None)
    if node is None or not has_kernels(node):
        convs = [n.path for n in network.graph.layers() if has_kernels(n)]
        raise TapsError(f"`{name}` is not a conv layer of `{network.name}`" + (f"; its convs: {', '.join(convs[:8])}"
                                                                              if convs else ""))
    weight = model_for(network, (), weights_path).state_dict()[f"{name}.weight"].numpy()
    kernels = weight.reshape(-1, *weight.shape[2:])
    if kernels.ndim == 2:  # 1-D kernels: one row each
        kernels = kernels[:, None, :]
    elif kernels.ndim == 4:
        kernels = kernels[:, kernels.shape[1] // 2]
    shown = kernels[:MAX_CHANNELS * 4]
    top = float(np.abs(weight).max()) or 1.0
    tiles = [Image.fromarray(np.round(128 + 127 * k / top).astype(np.uint8)) for k in shown]
    title = f"{name} kernels  {describe_shape(weight.shape)}" + (f"  (first {len(shown)})" if len(kernels) > len(shown) else "")
    return _tiles(title, tiles, KERNEL_TILE)


def taps_png(network, image_path, layers=(), kernels=None, weights_path=None) -> bytes:
    """The PNG `cnnspec taps` writes: the layers' maps for the picture, or a conv's kernels."""
    import io

    if kernels is not None:
        page = kernels_sheet(network, kernels, weights_path)
    else:
        maps = feature_maps(network, read_images(network, image_path), layers, weights_path)
        page = stack([maps_sheet(name, maps[name]) for name in layers])
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()
