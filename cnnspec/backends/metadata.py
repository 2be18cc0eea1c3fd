"""What an exported model says about itself, in ONNX `metadata_props`: one table of keys (`KEYS`,
documented in docs/deployment.md), the preprocessing an image needs before it is fed, and the
class labels of the outputs.

Values are strings, as `metadata_props` holds them: numbers per channel separated by commas,
labels one per line. Everything here is plain Python; numpy and Pillow load only to read an image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from cnnspec.graph import CheckedGraph

#: every key cnnspec writes into `metadata_props`, and what its value holds
KEYS: dict[str, str] = {
    "cnnspec.spec": "the spec's network name (`network NAME`)",
    "cnnspec.spec_sha256": "sha256 of the spec file's text as read (UTF-8, newlines as LF): "
                           "`sha256sum spec.cnn` of a file with LF line ends; its imports are not included",
    "cnnspec.version": "the cnnspec version that wrote the file",
    "cnnspec.input_layout": "the input's axes: `NC` (features alone), `NCL`, `NCHW` or `NCDHW` (N the batch, C the channels)",
    "cnnspec.precision": "`float32`, `float16` (weights and compute) or `int8` (QDQ, per-channel weights)",
    "cnnspec.preprocess.resize": "an image is resized to this before a centre crop to the input's size: "
                                 "`S` (the shorter side to S, keeping the aspect ratio) or `HxW`; "
                                 "absent: resized straight to the input's size",
    "cnnspec.preprocess.channel_order": "`RGB` or `BGR` (3 channels), `L` (1 channel): the order of the "
                                        "input's channels",
    "cnnspec.preprocess.mean": "per channel, in the input's channel order, on the [0, 1] scale of the "
                               "pixels: subtracted after the pixels are divided by 255",
    "cnnspec.preprocess.std": "per channel, as `mean`: the difference is divided by it",
    "cnnspec.labels": "the output classes' names, one per line, in the order of the outputs",
    "cnnspec.input_constraint": "with `--dynamic hw`: the sizes the input's spatial axes take with the same "
                                "weights, in words (`H and W must be at least 188`)",
    "cnnspec.input_sizes": "with `--dynamic hw`: the same as JSON, per axis (`H`, `W`; `D`, `L`) "
                           "`{\"multiple_of\": m, \"plus\": [r, ...], \"at_least\": lo}` (and `also`: smaller "
                           "sizes that work too), or `{\"only\": [n, ...]}`",
}

LAYOUTS = {0: "NC", 1: "NCL", 2: "NCHW", 3: "NCDHW"}


class OptionError(ValueError):
    """An option of an export that does not fit the others or the network. The message is a
    template naming each option as `{field}` (a field of `deploy.Deployment` or `Preprocessing`;
    `{float16}` and `{int8}` for the precisions): `str()` writes them as `to_onnx`'s parameters
    (`keep_io_types`) and the precisions as words, `worded(names)` as `names` gives them (the
    CLI's flags, `cli.DEPLOYMENT_FLAGS`). `values` fill the rest of the template as they are."""

    def __init__(self, template: str, **values):
        self.template, self.values = template, values
        super().__init__(self.worded({}))

    def worded(self, names: dict[str, str]) -> str:
        return self.template.format_map(_ParameterNames({**names, **self.values}))


class _ParameterNames(dict):
    """A field's name in backticks unless given: `keep_io_types`; a precision as a word."""

    def __missing__(self, key: str) -> str:
        return key if key in ("float16", "int8") else f"`{key}`"


class MetadataError(OptionError):
    """A preprocessing option, labels or an image that does not fit the network."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input:

        x = (pixels / 255 - mean) / std,  channels in `channel_order`, after resizing and cropping

    `resize`: `(S,)` resizes the shorter side to S, `(H, W)` to that size, then the centre is
    cropped to the input's size; `None` resizes straight to the input's size.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: tuple[int, ...] | None = None
    channel_order: str | None = None

    def check(self, input_shape: tuple[int, ...]) -> None:
        """Refuse what cannot apply to an input of `input_shape` (C, H, W)."""
        channels = input_shape[0]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, channels):
                raise MetadataError(f"{{{name}}} gives {{count}} values; the input has {{channels}} channels",
                                    count=len(values), channels=channels)
        if self.std is not None and any(v <= 0 for v in self.std):
            raise MetadataError("{std} must be positive")
        image_options = self.resize is not None or self.channel_order is not None
        shape = "x".join(map(str, input_shape))
        if image_options and (len(input_shape) != 3 or channels not in (1, 3)):
            raise MetadataError("{resize} and {channel_order} are for images: the input {shape} is not a 1- or "
                                "3-channel CxHxW", shape=shape)
        if self.channel_order is not None and (self.channel_order == "L") != (channels == 1):
            raise MetadataError("{channel_order} {order} does not fit an input of {channels} channel{plural}",
                                order=self.channel_order, channels=channels, plural="s" if channels > 1 else "")
        resize = self.resize and "x".join(map(str, self.resize))
        if self.resize is not None and len(self.resize) == 2 and any(
                r < s for r, s in zip(self.resize, input_shape[1:])):
            raise MetadataError("{resize} {size} is smaller than the input {spatial}, which is cropped from it",
                                size=resize, spatial="x".join(map(str, input_shape[1:])))
        if self.resize is not None and len(self.resize) == 1 and self.resize[0] < min(input_shape[1:]):
            raise MetadataError("{resize} {size} is smaller than the input's side {side}, which is cropped from it",
                                size=resize, side=min(input_shape[1:]))

    def properties(self) -> dict[str, str]:
        values = {"resize": self.resize and "x".join(map(str, self.resize)), "channel_order": self.channel_order,
                  "mean": self.mean and ",".join(map(repr, self.mean)), "std": self.std and ",".join(map(repr, self.std))}
        return {f"cnnspec.preprocess.{k}": v for k, v in values.items() if v}

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> "Preprocessing":
        def floats(key):
            value = props.get(f"cnnspec.preprocess.{key}")
            return tuple(float(v) for v in value.split(",")) if value else None

        resize = props.get("cnnspec.preprocess.resize")
        return cls(mean=floats("mean"), std=floats("std"),
                   resize=tuple(int(v) for v in resize.split("x")) if resize else None,
                   channel_order=props.get("cnnspec.preprocess.channel_order"))


def spec_sha256(network: "CheckedGraph") -> str:
    """sha256 of the text of the spec's own file (the first the source map holds)."""
    name, _ = network.sources.files()[0]
    return hashlib.sha256(network.sources.text(name).encode("utf-8")).hexdigest()


def read_labels(path) -> tuple[str, ...]:
    """One label per non-empty line of a text file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return tuple(line.strip() for line in handle if line.strip())
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError("cannot read the labels {path}: {error}", path=path,
                            error=getattr(error, "strerror", None) or error) from None


def check_labels(labels: tuple[str, ...], classes: int | None, where=None) -> None:
    """As many labels as the network's output classes, each one line. `where`: the file that
    holds them (the option itself without one)."""
    holder = "{labels}" if where is None else "{where}"
    if classes is None:
        raise MetadataError("{labels} needs a network whose output is a vector of class scores")
    if any("\n" in label or "\r" in label for label in labels):
        raise MetadataError(holder + " holds a label of several lines; each is one line", where=where)
    if len(labels) != classes:
        raise MetadataError(holder + " holds {count} labels; the network has {classes} outputs", where=where,
                            count=len(labels), classes=classes)


def model_properties(network: "CheckedGraph", precision: str = "float32", preprocessing: Preprocessing | None = None,
                     labels: tuple[str, ...] | None = None) -> dict[str, str]:
    """The metadata of an exported model, by key of `KEYS`, in the table's order."""
    from cnnspec.version import __version__

    props = {"cnnspec.spec": network.name, "cnnspec.spec_sha256": spec_sha256(network),
             "cnnspec.version": __version__, "cnnspec.input_layout": LAYOUTS[len(network.input_shape) - 1],
             "cnnspec.precision": precision}
    if preprocessing is not None:
        props.update(preprocessing.properties())
    if labels:
        props["cnnspec.labels"] = "\n".join(labels)
    return {key: props[key] for key in KEYS if key in props}


def write_properties(model, props: dict[str, str]) -> None:
    """Replace the model's `metadata_props` with `props`, in their order (the file stays byte-identical)."""
    unknown = set(props) - set(KEYS)
    if unknown:
        raise ValueError(f"metadata keys not in cnnspec.backends.metadata.KEYS: {sorted(unknown)}")
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_properties(model) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def labels_of(props: dict[str, str]) -> tuple[str, ...] | None:
    value = props.get("cnnspec.labels")
    return tuple(value.split("\n")) if value else None


def read_image(path: str, input_shape: tuple[int, ...], preprocessing: Preprocessing) -> "np.ndarray":
    """An image as the model's input (C, H, W), float32: `preprocessing` applied (see `Preprocessing`)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise MetadataError("the input {shape} is not a 1- or 3-channel image (CxHxW)",
                            shape="x".join(map(str, input_shape)))
    channels, height, width = input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            image = resized(image, preprocessing.resize, (height, width))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise MetadataError("cannot read the image {path}: {error}", path=path, error=error) from None
    left, top = (image.width - width) // 2, (image.height - height) // 2
    image = image.crop((left, top, left + width, top + height))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    x = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if preprocessing.channel_order == "BGR":
        x = x[::-1]
    if preprocessing.mean is not None:
        x = x - np.asarray(preprocessing.mean, np.float32).reshape(-1, 1, 1)
    if preprocessing.std is not None:
        x = x / np.asarray(preprocessing.std, np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def resized(image, resize: tuple[int, ...] | None, size: tuple[int, int]):
    """Bilinear resize: to `size` without `resize`; the shorter side to S for `(S,)`; to (H, W)."""
    from PIL import Image

    if resize is None:
        height, width = size
    elif len(resize) == 2:
        height, width = resize
    else:
        scale = resize[0] / min(image.width, image.height)
        width, height = max(round(image.width * scale), size[1]), max(round(image.height * scale), size[0])
    return image.resize((width, height), Image.BILINEAR)
