"""What an export adds for deployment, after the float32 graph is built: the precision the
weights are stored and computed in, and the metadata the file carries (`metadata.KEYS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnspec.backends.metadata import Preprocessing, model_properties, write_properties

if TYPE_CHECKING:
    import onnx

    from cnnspec.graph import CheckedGraph


@dataclass(frozen=True)
class Deployment:
    """The deployment options of one export. `labels`: the output classes' names."""

    preprocessing: Preprocessing | None = None
    labels: tuple[str, ...] | None = None


def finish(model: "onnx.ModelProto", network: "CheckedGraph", deployment: Deployment | None = None) -> "onnx.ModelProto":
    """The exported model with its metadata written in."""
    deployment = deployment or Deployment()
    write_properties(model, model_properties(network, "float32", deployment.preprocessing, deployment.labels))
    return model
