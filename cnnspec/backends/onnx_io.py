"""Writing ONNX files: checked with onnx's full checker, with external data past protobuf's 2 GB."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnspec.graph import CheckedGraph

#: the stages of an export, in order: the weights and the graph built, the file written, then checked
STAGES = ("weights", "write", "check")

#: protobuf cannot serialise a message of 2 GiB or more; stay clear of it
EXTERNAL_DATA_BYTES = 2**31 - 2**26


def initializer_bytes(model) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def export_model(network: "CheckedGraph", path: str | Path, weights=None, opset: int | None = None, fold_bn: bool = True,
                 batch: int | None = None, seed: int = 0, deployment=None, dynamic: str = "batch",
                 progress=None, **budget) -> str:
    """Build, check and write the model; a one-line account of what was written (and with
    `dynamic="hw"`, a second: the sizes the input takes). `weights`: a file or a dict;
    `deployment`: a `deploy.Deployment` (precision, metadata); `progress`: called with the name of
    each stage as it starts (`STAGES`); `budget`: `to_onnx`'s `memory_budget` and `budget_option`."""
    import onnx

    from cnnspec.backends.deploy import finish
    from cnnspec.backends.onnx import DEFAULT_OPSET, to_onnx
    from cnnspec.backends.onnx_write import write_model
    from cnnspec.backends.runtime import read_weights

    progress = progress or (lambda stage: None)
    progress("weights")
    model = to_onnx(network, weights=read_weights(weights), opset=opset or DEFAULT_OPSET, fold_bn=fold_bn,
                    batch=batch, seed=seed, dynamic=dynamic, **budget)
    model = finish(model, network, deployment)
    path = Path(path)
    size = initializer_bytes(model)
    if size >= EXTERNAL_DATA_BYTES:
        location = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location, size_threshold=1024)
        onnx.checker.check_model(str(path), full_check=True)
        where = f"{path} (weights in {location})"
        return account(model, where, size)
    # written tensor by tensor (the serialised model is never whole in memory), the model let go,
    # and then the file checked; a file that fails the check is removed
    text = account(model, str(path), size)
    progress("write")
    with open(path, "wb") as handle:
        write_model(model, handle)
    del model
    progress("check")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return text


def account(model, where: str, size: int) -> str:
    """The lines `cnnspec export` prints about a written model."""
    text = (f"wrote {where}: {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers "
            f"({size / 2**20:.1f} MiB), opset {model.opset_import[0].version}, IR version {model.ir_version}")
    constraint = {p.key: p.value for p in model.metadata_props}.get("cnnspec.input_constraint")
    return text + (f"\ninput: {constraint}" if constraint else "")
