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


#: glibc's `mallopt` parameter for the size from which an allocation is mapped on its own
M_MMAP_THRESHOLD = -3
#: from 64 KiB: a weight, its serialised bytes and a folded copy are each mapped, and unmapped
#: when freed
MAPPED_FROM = 2**16


def large_buffers_returned() -> bool:
    """Make this process return large buffers to the system as soon as they are freed (glibc's
    mmap threshold fixed at `MAPPED_FROM`; False elsewhere). By default glibc raises the
    threshold to the largest buffer freed so far, up to 32 MiB, and then serves buffers of a
    weight's size from its heap, which freeing does not shrink: an export of ResNet-50 then holds
    some 40 MiB more than it uses. For a process of its own, as `cnnspec export` is."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MAPPED_FROM))
    except (OSError, AttributeError):
        return False


def export_model(network: "CheckedGraph", path: str | Path, weights=None, opset: int | None = None, fold_bn: bool = True,
                 batch: int | None = None, seed: int = 0, deployment=None, dynamic: str = "batch",
                 progress=None, **budget) -> str:
    """Build, check and write the model; a one-line account of what was written (and with
    `dynamic="hw"`, a second: the sizes the input takes). `weights`: a file or a dict;
    `deployment`: a `deploy.Deployment` (precision, metadata); `progress`: called with the name of
    each stage as it starts (`STAGES`); `budget`: `to_onnx`'s `memory_budget` and `budget_option`."""
    import onnx

    from cnnspec.backends.deploy import Deployment, finish
    from cnnspec.backends.onnx import DEFAULT_OPSET, to_onnx
    from cnnspec.backends.onnx_write import write_model
    from cnnspec.backends.runtime import read_weights

    deployment = deployment or Deployment()
    # before anything is built
    deployment.check(network)
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
    # written tensor by tensor (the serialised model is never whole in memory) and checked; a
    # file that fails the check is removed
    text = account(model, str(path), size)
    progress("write")
    try:
        with open(path, "wb") as handle:
            placements = write_model(model, handle)
        progress("check")
        check_written(model, path, placements)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return text


def check_written(model, path: Path, placements) -> None:
    """onnx's full checker on a written model, without reading its weights a second time.

    `onnx.checker.check_model(path)` reads the whole file into memory and parses it, twice the
    file's size at once. Here each initializer is checked on its own (`check_tensor`: its bytes
    against its type and dimensions), and then the model's graph, each initializer referenced
    as external data where `write_model` placed its bytes in the file (`placements`), by the full
    checker with strict shape inference. The bytes written equal `model.SerializeToString()`
    (tests/test_onnx_backend.py)."""
    import tempfile

    import onnx

    for tensor in model.graph.initializer:
        onnx.checker.check_tensor(tensor)
    light = graph_by_reference(model, path.name, placements)
    # beside the written file: a reference is relative to the folder of the model that holds it
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".graph.onnx") as checked:
        checked.write(light.SerializeToString())
        checked.flush()
        onnx.checker.check_model(checked.name, full_check=True)


#: a weight from this many bytes is referenced in place for the check (onnx's own threshold for
#: external data); smaller ones, and integer tensors (a Reshape's target, which shape inference
#: reads), stay in the checked graph
REFERENCED_FROM = 1024


def graph_by_reference(model, location: str, placements):
    """A copy of `model` whose float initializers (from `REFERENCED_FROM` bytes) hold no bytes,
    each referencing its bytes in the file `location` (`placements`, in order) as ONNX external
    data does."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    from cnnspec.backends.onnx_write import only

    light = onnx.ModelProto()
    for descriptor, _ in model.ListFields():
        if descriptor.name != "graph":
            light.MergeFrom(only(model, descriptor.name))
    for descriptor, _ in model.graph.ListFields():
        if descriptor.name != "initializer":
            light.graph.MergeFrom(only(model.graph, descriptor.name))
    for tensor, placement in zip(model.graph.initializer, placements):
        if placement is None or placement.length < REFERENCED_FROM or tensor.data_type not in floats:
            light.graph.initializer.append(tensor)
            continue
        reference = light.graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                                data_location=onnx.TensorProto.EXTERNAL)
        for key, value in (("location", location), ("offset", placement.offset), ("length", placement.length)):
            reference.external_data.add(key=key, value=str(value))
    return light


def account(model, where: str, size: int) -> str:
    """The lines `cnnspec export` prints about a written model."""
    text = (f"wrote {where}: {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers "
            f"({size / 2**20:.1f} MiB), opset {model.opset_import[0].version}, IR version {model.ir_version}")
    constraint = {p.key: p.value for p in model.metadata_props}.get("cnnspec.input_constraint")
    return text + (f"\ninput: {constraint}" if constraint else "")
