"""int8 models: static quantisation of the float32 graph through `onnxruntime.quantization`.

QDQ format (QuantizeLinear / DequantizeLinear pairs around each quantised op, which
onnxruntime fuses into integer kernels), int8 weights with a scale per output channel, uint8
activations whose ranges are the minimum and maximum seen on calibration data. The data are
the user's: a folder of `.npy` arrays or images (read with the preprocessing the export states),
or a `.npz`; without them there is nothing to calibrate on, and the export refuses rather than
calibrating on noise.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

    from cnnspec.backends.metadata import Preprocessing

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: samples fed to onnxruntime at once while the ranges are collected
CALIBRATION_BATCH = 16


class CalibrationError(ValueError):
    """Calibration data that are missing or do not fit the network's input."""


def network_input(network) -> tuple[int, ...]:
    """The shape calibration samples take: int8 is calibrated on networks of one input."""
    if len(network.input_shapes) > 1:
        raise CalibrationError(f"int8 is calibrated on samples of one input; `{network.name}` takes "
                               f"{len(network.input_shapes)} ({', '.join(network.input_shapes)})")
    return network.input_shape


def calibration_arrays(path: str | Path, input_shape: tuple[int, ...],
                       preprocessing: "Preprocessing | None" = None) -> np.ndarray:
    """The calibration samples (n, *input_shape), float32: every `.npy` and image of a folder (by
    name), or every array of a `.npz` (or one `.npy`); an array holds one sample or a batch."""
    from cnnspec.backends.metadata import MetadataError, Preprocessing, read_image

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npy", *IMAGE_SUFFIXES))
        if not files:
            raise CalibrationError(f"{path} holds no .npy arrays or images to calibrate on")
        arrays = []
        for file in files:
            if file.suffix.lower() == ".npy":
                arrays.append((file.name, load_array(file)))
            else:
                try:
                    arrays.append((file.name, read_image(str(file), input_shape, preprocessing or Preprocessing())))
                except MetadataError as error:
                    raise CalibrationError(str(error)) from None
    elif path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = [(f"{path.name}:{key}", archive[key]) for key in archive.files]
        except Exception as error:  # numpy's reader fails in many ways on a bad file
            raise CalibrationError(f"cannot read {path}: {error}") from None
        if not arrays:
            raise CalibrationError(f"{path} holds no arrays to calibrate on")
    elif path.suffix.lower() == ".npy":
        arrays = [(path.name, load_array(path))]
    else:
        raise CalibrationError(f"calibration data are a folder of .npy arrays or images, or a .npz; got {path}")
    return np.concatenate([as_samples(name, array, input_shape) for name, array in arrays])


def calibration_samples(data, input_shape: tuple[int, ...], preprocessing: "Preprocessing | None" = None) -> np.ndarray:
    """The calibration samples (n, *input_shape), float32, from a path (`calibration_arrays`) or
    from an array that holds one sample or a batch."""
    if isinstance(data, (str, Path)):
        return calibration_arrays(data, input_shape, preprocessing)
    return as_samples("the calibration array", np.asarray(data), input_shape)


def as_samples(name: str, array: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """`array`, one sample or a batch of them, as a float32 batch; `name` says where it came from."""
    if tuple(array.shape) == tuple(input_shape):
        array = array[None]
    if tuple(array.shape[1:]) != tuple(input_shape) or not np.issubdtype(array.dtype, np.number) or not len(array):
        raise CalibrationError(f"{name} holds an array of shape {tuple(array.shape)} ({array.dtype}); the "
                               f"network takes {'x'.join(map(str, input_shape))} or a batch of it")
    return array.astype(np.float32)


def load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # numpy's reader fails in many ways on a bad file
        raise CalibrationError(f"cannot read {path}: {error}") from None


def holds_images(path: str | Path) -> bool:
    """Whether calibration data at `path` include images (which need Pillow)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


@contextmanager
def quiet():
    """onnxruntime's quantiser logs advice on the root logger; the export speaks for itself."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def to_int8(model: "onnx.ModelProto", samples: np.ndarray) -> "onnx.ModelProto":
    """`model` (float32) statically quantised, calibrated on `samples` (n, C, ...)."""
    import onnx
    from onnxruntime import quantization

    class Reader(quantization.CalibrationDataReader):
        """The samples in batches of `CALIBRATION_BATCH`."""

        def __init__(self, input_name: str):
            self.batches = iter({input_name: samples[i:i + CALIBRATION_BATCH]}
                                for i in range(0, len(samples), CALIBRATION_BATCH))

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="cnnspec-int8-") as folder:
        source, target = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        # the quantiser reads and writes files (its shape inference saves the model again)
        source.write_bytes(model.SerializeToString())
        with quiet():
            quantization.quantize_static(
                str(source), str(target), Reader(model.graph.input[0].name), quant_format=quantization.QuantFormat.QDQ,
                per_channel=True, activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax)
        return onnx.load_model_from_string(target.read_bytes())
