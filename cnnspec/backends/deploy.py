"""What an export adds for deployment, after the float32 graph is built: the precision the
weights are stored and computed in, and the metadata the file carries (`metadata.KEYS`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cnnspec.backends.metadata import KEYS, Preprocessing, model_properties, read_properties, write_properties

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from cnnspec.graph import CheckedGraph

Precision = Literal["float32", "float16", "int8"]
#: the relative L2 difference from PyTorch's float32 that `cnnspec verify` allows by default: float16
#: rounds every value to 11 significant bits (a relative 2^-11 = 4.9e-4 each), over tens of layers
TOLERANCES: dict[str, float] = {"float32": 1e-4, "float16": 1e-2}


class CalibrationMissingError(ValueError):
    """int8 asked for without calibration data."""


@dataclass(frozen=True)
class Deployment:
    """The deployment options of one export, of `cnnspec export` and `Network.to_onnx` alike.
    `labels`: the output classes' names; `keep_io_types`: float32 inputs and outputs around a
    float16 graph; `calibration`: int8's calibration data, a path (`quantise.calibration_arrays`)
    or an array of samples (n, *input shape)."""

    precision: Precision = "float32"
    keep_io_types: bool = False
    calibration: "str | Path | np.ndarray | None" = None
    preprocessing: Preprocessing | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.precision not in ("float32", "float16", "int8"):
            raise ValueError(f"precision is float32, float16 or int8, not {self.precision!r}")
        if self.keep_io_types and self.precision != "float16":
            raise ValueError("keep_io_types keeps float32 inputs and outputs around a float16 model")
        if self.calibration is not None and self.precision != "int8":
            raise ValueError("calibration data are for an int8 model")


def convert(model: "onnx.ModelProto", network: "CheckedGraph", deployment: Deployment) -> "onnx.ModelProto":
    """The float32 model in the deployment's precision."""
    from cnnspec.backends.onnx_shapes import declare_shapes

    if deployment.precision == "float16":
        from cnnspec.backends.float16 import to_float16

        return to_float16(model, deployment.keep_io_types)
    if deployment.precision == "int8":
        from cnnspec.backends.quantise import calibration_samples, network_input, to_int8

        if deployment.calibration is None:
            raise CalibrationMissingError("int8 needs calibration data, samples of what the model will see: "
                                          "--calibrate DATA (a folder of .npy arrays or images, or a .npz)")
        samples = calibration_samples(deployment.calibration, network_input(network), deployment.preprocessing)
        model = to_int8(model, samples)
        # the quantiser's own tensors (QuantizeLinear outputs) join the declared shapes
        declare_shapes(model)
    return model


def finish(model: "onnx.ModelProto", network: "CheckedGraph", deployment: Deployment | None = None) -> "onnx.ModelProto":
    """The exported model in its precision, with its metadata written in."""
    deployment = deployment or Deployment()
    # the options are checked against the network before the conversion's work
    properties = model_properties(network, deployment.precision, deployment.preprocessing, deployment.labels)
    # what `to_onnx` wrote itself (the input's sizes, when they are symbolic) is kept
    properties = {**read_properties(model), **properties}
    model = convert(model, network, deployment)
    write_properties(model, {key: properties[key] for key in KEYS if key in properties})
    return model
