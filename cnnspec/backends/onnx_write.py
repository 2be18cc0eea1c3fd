"""Writing a model file with the bytes `SerializeToString()` gives, without holding them all: the
graph's initializers are serialised and written one at a time.

A protobuf message is its fields one after another in field-number order, each as a tag (field
number and wire type), then for a message or bytes its length and its content; a repeated field
is that once per element. So the model is written field by field, and its graph field (7) as
the tag, the graph's length (summed from `ByteSize()` of its parts) and the graph's own fields,
its initializers (field 5) each serialised on its own.

Each initializer's `raw_data` (field 9) is the last field its serialisation holds (cnnspec's
tensors carry only dims, type, name and raw data, and fields are written in number order), so
the writer knows where in the file each tensor's bytes lie (`Placement`): a check can then read
the graph alone, its tensors referenced where they lie, instead of the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

#: the field numbers of ModelProto.graph, GraphProto.initializer and TensorProto.raw_data
GRAPH_FIELD, INITIALIZER_FIELD, RAW_DATA_FIELD = 7, 5, 9
#: protobuf's wire type of a length-delimited field
LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint.

    >>> varint(1), varint(300)
    (b'\\x01', b'\\xac\\x02')
    """
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_prefix(field: int, length: int) -> bytes:
    return varint(field << 3 | LENGTH_DELIMITED) + varint(length)


def only(message, field_name: str):
    """A message of the same type holding one of `message`'s fields."""
    part = type(message)()
    value = getattr(message, field_name)
    descriptor = message.DESCRIPTOR.fields_by_name[field_name]
    if descriptor.is_repeated:
        getattr(part, field_name).extend(value)
    elif descriptor.message_type is not None:
        getattr(part, field_name).CopyFrom(value)
    else:
        setattr(part, field_name, value)
    return part


@dataclass(frozen=True)
class Placement:
    """Where an initializer's raw bytes lie in the written file."""

    name: str
    offset: int
    length: int


def write_model(model, handle: BinaryIO) -> list[Placement]:
    """Write `model` to `handle` as `model.SerializeToString()`; where each initializer's raw data
    lies in what was written (None for one that holds its numbers otherwise)."""
    graph = model.graph
    graph_parts = []
    for descriptor, _ in graph.ListFields():
        if descriptor.number == INITIALIZER_FIELD:
            graph_parts.append(("initializers", None))
        else:
            graph_parts.append(("bytes", only(graph, descriptor.name).SerializeToString()))
    graph_size = sum(len(part) for kind, part in graph_parts if kind == "bytes")
    for tensor in graph.initializer:
        size = tensor.ByteSize()
        graph_size += len(length_prefix(INITIALIZER_FIELD, size)) + size
    written = 0
    placements: list[Placement | None] = []
    for descriptor, _ in model.ListFields():
        if descriptor.number != GRAPH_FIELD:
            written += handle.write(only(model, descriptor.name).SerializeToString())
            continue
        written += handle.write(length_prefix(GRAPH_FIELD, graph_size))
        for kind, part in graph_parts:
            if kind == "bytes":
                written += handle.write(part)
                continue
            for tensor in graph.initializer:
                written += handle.write(length_prefix(INITIALIZER_FIELD, tensor.ByteSize()))
                written += handle.write(tensor.SerializeToString())
                # fields are written in number order: the raw data's bytes end the tensor's when
                # no field numbered after it is set
                last = max(descriptor.number for descriptor, _ in tensor.ListFields())
                raw = len(tensor.raw_data)
                placements.append(Placement(tensor.name, written - raw, raw) if raw and last == RAW_DATA_FIELD else None)
    return placements
