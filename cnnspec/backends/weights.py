"""The weights of a network by state_dict key, without torch: their shapes, a seeded random
initialisation with PyTorch's default distributions (numpy), and loading from files.

Keys and shapes are those of `Network.to_torch().state_dict()` (a test holds them equal),
so weights move between the PyTorch and ONNX backends by name.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cnnspec.codes import Code
from cnnspec.graph import LayerNode
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import Constant, FanIn, Given, Tensor

if TYPE_CHECKING:
    import numpy as np

    from cnnspec.graph import CheckedGraph

Shape = tuple[int, ...]


def layer_state(node: LayerNode) -> tuple[Tensor, ...]:
    """The state a layer's kind declares for it: its parameters and buffers, in state_dict order."""
    return REGISTRY[node.kind].state(node.params, node.in_shape)


def state_key(node: LayerNode, tensor: Tensor) -> str:
    """`layer1.0.conv1.weight`; a bare parameter is saved under the layer's own path."""
    return f"{node.path}.{tensor.key}" if tensor.key else node.path


def network_state(network: "CheckedGraph") -> dict[str, Tensor]:
    """Every state_dict entry of the network by key, in module order."""
    return {state_key(node, tensor): tensor for node in network.graph.layers() for tensor in layer_state(node)}


def layer_weight_shapes(node: LayerNode) -> dict[str, Shape]:
    """`{"weight": (64, 3, 7, 7), "bias": (64,)}` for one layer; empty for stateless ones."""
    return {tensor.key: tensor.shape for tensor in layer_state(node)}


def weight_shapes(network: "CheckedGraph") -> dict[str, Shape]:
    """Every state_dict key of the network with its shape, in module order."""
    return {key: tensor.shape for key, tensor in network_state(network).items()}


def fan_in(weight: Shape) -> int:
    """PyTorch's fan-in: weight.size(1) times the kernel's size."""
    return weight[1] * math.prod(weight[2:]) if len(weight) > 1 else weight[0]


def random_weights(network: "CheckedGraph", seed: int = 0, statistics: bool = False) -> dict[str, "np.ndarray"]:
    """A seeded initialisation with PyTorch's default distributions, as each kind's state declares it.

    Conv, transposed conv and linear: weight and bias uniform in +-1/sqrt(fan_in) (what
    kaiming_uniform_(a=sqrt(5)) gives). Norms: weight 1, bias 0, running mean 0, variance 1;
    with `statistics`, random affine parameters and running statistics instead (each entry's
    `spread`), so that a comparison of backends exercises batch norm (and its folding) for real.
    """
    return dict(random_state(network, seed, statistics))


def random_state(network: "CheckedGraph", seed: int = 0, statistics: bool = False):
    """`random_weights`' entries as (key, array), drawn one after another in execution order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for node in network.graph.layers():
        state = layer_state(node)
        shapes = {tensor.key: tensor.shape for tensor in state}
        for tensor in state:
            key, init = state_key(node, tensor), tensor.init
            if tensor.role == "counter":
                yield key, np.zeros(tensor.shape, dtype=np.int64)
            elif isinstance(init, Given):
                yield key, np.array(init.values, dtype=np.float32).reshape(tensor.shape)
            elif isinstance(init, FanIn):
                bound = 1 / math.sqrt(fan_in(shapes[init.of]))
                yield key, uniform(rng, -bound, bound, tensor.shape)
            elif statistics and init.spread is not None:
                yield key, uniform(rng, *init.spread, tensor.shape)
            else:
                assert isinstance(init, Constant)
                yield key, np.full(tensor.shape, init.value, dtype=np.float32)


class DrawnWeights(MutableMapping):
    """`random_weights(network, seed)` as a mapping whose entries are drawn when first asked for:
    a consumer that takes them in execution order (the ONNX lowering, which pops each into its
    initializer) never holds more than a few at once, instead of all of them beside the model.
    The numbers are those of `random_weights`: the same stream, drawn in the same order."""

    def __init__(self, network: "CheckedGraph", seed: int = 0):
        self._drawn: dict = {}
        self._stream = random_state(network, seed)

    def _draw_until(self, key=None) -> None:
        for drawn, array in self._stream:
            self._drawn[drawn] = array
            if drawn == key:
                return

    def __getitem__(self, key):
        if key not in self._drawn:
            self._draw_until(key)
        return self._drawn[key]

    def __setitem__(self, key, value) -> None:
        self._drawn[key] = value

    def __delitem__(self, key) -> None:
        if key not in self._drawn:
            self._draw_until(key)
        del self._drawn[key]

    def __iter__(self):
        self._draw_until()
        return iter(self._drawn)

    def __len__(self) -> int:
        self._draw_until()
        return len(self._drawn)


#: values drawn at a time: the float64 draws stay small beside the float32 array they fill
DRAW_CHUNK = 2**20


def uniform(rng, low: float, high: float, shape: Shape) -> "np.ndarray":
    """`rng.uniform(low, high, shape).astype(float32)`, the same numbers, drawn in slices so that
    no float64 array twice the size of the weights is made (a Generator's stream does not depend
    on how the draws are split)."""
    import numpy as np

    out = np.empty(shape, dtype=np.float32)
    flat = out.reshape(-1)
    for start in range(0, flat.size, DRAW_CHUNK):
        stop = min(start + DRAW_CHUNK, flat.size)
        flat[start:stop] = rng.uniform(low, high, stop - start)
    return out


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the network."""


@dataclass(frozen=True)
class StoredArray:
    """An array of a weights file known by its header (shape and dtype), read when it is used:
    a file whose shapes do not fit is refused before any of its data is read."""

    shape: Shape
    dtype: str
    read: Callable[[], "np.ndarray"]

    def __array__(self, dtype=None, copy=None):
        array = self.read()
        return array if dtype is None else array.astype(dtype, copy=False)


#: safetensors' dtype names as numpy's
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "C64": "complex64"}


def load_weights(path: str | Path) -> dict[str, object]:
    """Arrays by key from a `.safetensors`, `.npz` or `.pt`/`.pth` (a state_dict) file, each read
    only when used (a `.pt` is memory-mapped)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            return safetensors_arrays(path)
        if suffix == ".npz":
            return npz_arrays(path)
        if suffix in (".pt", ".pth"):
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(state, dict):
                raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict")
            return dict(state)
    except WeightsError:
        raise
    except Exception as error:  # every reader has its own exceptions; all mean "cannot read"
        raise WeightsError(f"cannot read {path}: {error}") from None
    raise WeightsError(f"{path}: weights must be .safetensors, .npz, .pt or .pth")


def safetensors_arrays(path: Path) -> dict[str, StoredArray]:
    """The tensors of a `.safetensors` by its header, each read when used. The file is mapped
    into memory while one tensor is read, not for as long as the arrays live: the mapped pages
    count as the process's memory, and a whole mapped ResNet-50 is another 97 MiB at the
    export's peak (308 MiB against 208 MiB from an `.npz`)."""
    from safetensors import safe_open

    def read(key: str):
        with safe_open(str(path), framework="numpy") as handle:
            return handle.get_tensor(key)

    arrays = {}
    with safe_open(str(path), framework="numpy") as handle:
        for key in handle.keys():
            header = handle.get_slice(key)
            dtype = header.get_dtype()
            arrays[key] = StoredArray(tuple(header.get_shape()), SAFETENSORS_DTYPES.get(dtype, dtype),
                                      lambda key=key: read(key))
    return arrays


def npz_arrays(path: Path) -> dict[str, StoredArray]:
    """The arrays of an `.npz` by their `.npy` headers, each read from the archive when used."""
    import zipfile

    import numpy as np

    archive = np.load(path, allow_pickle=False)
    arrays = {}
    with zipfile.ZipFile(path) as members:
        for key in archive.files:
            with members.open(key + ".npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
            arrays[key] = StoredArray(tuple(shape), dtype.name, lambda key=key: archive[key])
    return arrays


#: weights and buffers larger than this (fp32 bytes) are refused before anything is allocated
DEFAULT_MEMORY_BUDGET = 4 * 2**30

class WeightsWarning(UserWarning):
    """Weights that were converted to float32 (a wider float rounded, a narrower one widened)."""


def weight_bytes(network: "CheckedGraph") -> int:
    """What the weights and buffers take in fp32: 4 * (params + buffers)."""
    return 4 * (network.params + network.buffers)


def check_budget(network: "CheckedGraph", budget: int | None, option: str = "memory_budget") -> None:
    """E303 at the largest layer when the weights take more than `budget` bytes in fp32, before
    anything is allocated; `option` is what the help tells to raise."""
    needed = weight_bytes(network)
    if budget is None or needed <= budget:
        return
    from cnnspec.diagnostics import Diagnostic, SpecError
    from cnnspec.wording import human

    params = {row.id: row.params for row in network.rows}
    largest = max(network.graph.layers(), key=lambda node: params[node.id])
    diagnostic = Diagnostic(
        code=Code.OVER_MEMORY_BUDGET, message=f"the weights need {human(needed)}B in fp32, over the memory budget of {human(budget)}B",
        span=largest.span, label=f"the largest layer: {params[largest.id]:,} parameters",
        help=f"raise `{option}` if the machine has the memory, or shrink the network")
    raise SpecError([diagnostic], network.sources)


def listed(items: list[str], most: int = 5) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def check_keys(network: "CheckedGraph", weights) -> dict[str, Tensor]:
    """A mapping from string keys holding every key the network needs and no other; the state
    entries expected. Misuse of the API (a list, non-string keys) is a `TypeError`."""
    from collections.abc import Mapping

    if not isinstance(weights, Mapping):
        raise TypeError(f"`weights` must be a dict of arrays by state_dict key (as `state_dict()` gives), "
                        f"not a {type(weights).__name__}")
    odd = [repr(k) for k in weights if not isinstance(k, str)]
    if odd:
        raise TypeError(f"the keys of `weights` must be state_dict keys (strings), not {listed(odd)}")
    expected = network_state(network)
    missing = [f"`{k}`" for k in expected if k not in weights]
    unknown = [f"`{k}`" for k in weights if k not in expected]
    problems = ([f"missing {listed(missing)}"] if missing else []) + ([f"unknown {listed(unknown)}"] if unknown else [])
    if problems:
        raise WeightsError(f"the weights do not fit `{network.name}`: " + "; ".join(problems))
    return expected


def dtype_name(value) -> str:
    """`float32`, `complex64`, `bool`... of a numpy array or a torch tensor, without converting it."""
    dtype = getattr(value, "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else type(value).__name__


def dtype_problem(key: str, dtype: str, counter: bool = False) -> str | None:
    """Why an array of `dtype` cannot be the weights under `key` (a `counter` holds an integer);
    None when it can (perhaps converted)."""
    integer = dtype.startswith(("int", "uint"))
    if counter:
        return None if integer else f"`{key}` is {dtype}: a batch count is an integer"
    if dtype.startswith("complex"):
        return f"`{key}` is {dtype}: weights are real, and its imaginary part would be dropped"
    if integer or dtype == "bool":
        return f"`{key}` is {dtype}: weights are floating point (dequantise integer weights first)"
    if not (dtype.startswith("float") or dtype in ("bfloat16", "half", "double", "longdouble")):
        return f"`{key}` is {dtype}, not an array of floating-point numbers"
    return None


def prepare_weights(network: "CheckedGraph", weights, budget: int | None = None,
                    option: str = "memory_budget") -> dict[str, "np.ndarray"]:
    """Supplied weights (numpy arrays or torch tensors by state_dict key) as float32 numpy arrays.

    Checked in order of cost: the keys, then every shape against the declared state shapes and
    every dtype, then the memory budget (E303), and only then converted: a wider float is rounded
    to float32 and a narrower one widened, with a `WeightsWarning`; complex, integer and boolean
    arrays are refused, as are values that are NaN or infinite (also after rounding), by key.
    """
    import numpy as np

    expected = check_keys(network, weights)
    problems = []
    for key, tensor in expected.items():
        value, want = weights[key], tensor.shape
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            problems.append(f"`{key}` is a {type(value).__name__}, not an array")
            continue
        if tuple(value.shape) != want:
            problems.append(f"`{key}` has shape {tuple(value.shape)}, expected {want}")
            continue
        problem = dtype_problem(key, dtype_name(value), tensor.role == "counter")
        if problem:
            problems.append(problem)
    if problems:
        raise WeightsError(f"the weights do not fit `{network.name}`: " + "; ".join(problems))
    check_budget(network, budget, option)
    arrays, converted = {}, []
    for key, tensor in expected.items():
        value, dtype = weights[key], dtype_name(weights[key])
        if tensor.role == "counter":
            arrays[key] = np.asarray(as_numpy(value), dtype=np.int64)
            continue
        if dtype != "float32":
            converted.append(f"`{key}` ({dtype})")
        with np.errstate(over="ignore"):  # a double beyond float32 is reported below, by key
            arrays[key] = np.asarray(as_numpy(value), dtype=np.float32)
        count = non_finite(arrays[key])
        if count:
            rounded = " once rounded to float32" if dtype != "float32" and np.isfinite(as_numpy(value)).all() else ""
            problems.append(f"`{key}` holds {count:,} NaN or infinite value{'s' if count > 1 else ''}{rounded}")
    if problems:
        raise WeightsError(f"the weights of `{network.name}` are not finite: " + "; ".join(problems))
    if converted:
        import warnings

        warnings.warn(f"weights converted to float32: {listed(converted)}", WeightsWarning, stacklevel=3)
    return arrays


def as_numpy(value):
    """A numpy view of a torch tensor (bfloat16, which numpy lacks, as float32); numpy arrays as they are."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return value


def non_finite(array: "np.ndarray") -> int:
    """How many values are NaN or infinite; the minimum and maximum tell whether there are any
    without a temporary array the size of the weights (both are NaN if any value is)."""
    import numpy as np

    if array.size == 0 or (np.isfinite(array.min()) and np.isfinite(array.max())):
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))
