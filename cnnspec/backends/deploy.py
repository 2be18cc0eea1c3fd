"""What an export adds for deployment, after the float32 graph is built: the precision the
weights are stored and computed in, and the metadata the file carries (`metadata.KEYS`).

`Deployment` is the one place its options are checked, against each other when it is made and
against the network (`Deployment.check`) before anything is built; its errors
(`metadata.OptionError`) name the options as `to_onnx`'s parameters, and the CLI words them as
its flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cnnspec.backends.metadata import (
    KEYS,
    OptionError,
    Preprocessing,
    check_labels,
    model_properties,
    read_labels,
    read_properties,
    write_properties,
)

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from cnnspec.graph import CheckedGraph

Precision = Literal["float32", "float16", "int8"]
#: the relative L2 difference from PyTorch's float32 that `cnnspec verify` allows by default: float16
#: rounds every value to 11 significant bits (a relative 2^-11 = 4.9e-4 each), over tens of layers
TOLERANCES: dict[str, float] = {"float32": 1e-4, "float16": 1e-2}


class DeploymentError(OptionError):
    """Deployment options that contradict each other."""


class CalibrationMissingError(DeploymentError):
    """int8 asked for without calibration data."""


@dataclass(frozen=True)
class Deployment:
    """The deployment options of one export, of `cnnspec export` and `Network.to_onnx` alike.
    `labels`: the output classes' names, or a text file of them (one per line, read here);
    `keep_io_types`: float32 inputs and outputs around a float16 graph; `calibration`: int8's
    calibration data, a path (`quantise.calibration_arrays`) or an array of samples (n, *input shape)."""

    precision: Precision = "float32"
    keep_io_types: bool = False
    calibration: "str | Path | np.ndarray | None" = None
    preprocessing: Preprocessing | None = None
    labels: "tuple[str, ...] | str | Path | None" = None
    #: the file the labels were read from, named by the errors about them
    labels_file: "str | Path | None" = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.precision not in ("float32", "float16", "int8"):
            raise DeploymentError("{precision} is float32, float16 or int8, not {given!r}", given=self.precision)
        if self.keep_io_types and self.precision != "float16":
            raise DeploymentError("{keep_io_types} keeps float32 inputs and outputs around a {float16} model")
        if self.calibration is not None and self.precision != "int8":
            raise DeploymentError("{calibration} gives the data of {int8}'s calibration")
        if self.precision == "int8" and self.calibration is None:
            raise CalibrationMissingError("{int8} needs calibration data ({calibration}), samples of what the model "
                                          "will see: a folder of .npy arrays or images, or a .npz")
        if isinstance(self.labels, (str, Path)):
            object.__setattr__(self, "labels_file", self.labels)
            object.__setattr__(self, "labels", read_labels(self.labels))
        elif self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    def check(self, network: "CheckedGraph") -> None:
        """Refuse options that do not fit `network`: preprocessing for another input, labels for
        another number of classes."""
        if self.preprocessing is not None:
            self.preprocessing.check(network.input_shape)
        if self.labels is not None:
            classes = network.output_shape[0] if len(network.output_shape) == 1 else None
            check_labels(self.labels, classes, self.labels_file)


def convert(model: "onnx.ModelProto", network: "CheckedGraph", deployment: Deployment) -> "onnx.ModelProto":
    """The float32 model in the deployment's precision."""
    from cnnspec.backends.onnx_shapes import declare_shapes

    if deployment.precision == "float16":
        from cnnspec.backends.float16 import to_float16

        return to_float16(model, deployment.keep_io_types)
    if deployment.precision == "int8":
        from cnnspec.backends.quantise import calibration_samples, network_input, to_int8

        samples = calibration_samples(deployment.calibration, network_input(network), deployment.preprocessing)
        model = to_int8(model, samples)
        # the quantiser's own tensors (QuantizeLinear outputs) join the declared shapes
        declare_shapes(model)
    return model


def finish(model: "onnx.ModelProto", network: "CheckedGraph", deployment: Deployment | None = None) -> "onnx.ModelProto":
    """The exported model in its precision, with its metadata written in."""
    deployment = deployment or Deployment()
    deployment.check(network)
    properties = model_properties(network, deployment.precision, deployment.preprocessing, deployment.labels)
    # what `to_onnx` wrote itself (the input's sizes, when they are symbolic) is kept
    properties = {**read_properties(model), **properties}
    model = convert(model, network, deployment)
    write_properties(model, {key: properties[key] for key in KEYS if key in properties})
    return model
