"""The weights of a network by state_dict key, without torch: their shapes, a seeded random
initialisation with PyTorch's default distributions (numpy), and loading from files.

Keys and shapes are those of `Network.to_torch().state_dict()` (a test holds them equal),
so weights move between the PyTorch and ONNX backends by name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from cnnspec.graph import LayerNode
from cnnspec.layers.conv import conv_geometry, deconv_geometry

if TYPE_CHECKING:
    import numpy as np

    from cnnspec.network import Network

Shape = tuple[int, ...]


def layer_weight_shapes(node: LayerNode) -> dict[str, Shape]:
    """`{"weight": (64, 3, 7, 7), "bias": (64,)}` for one layer; empty for stateless ones."""
    p, shape = node.params, node.in_shape
    if node.kind == "conv":
        g = conv_geometry(p, shape)
        return {"weight": g.weight_shape, **({"bias": (g.out_channels,)} if p.bias else {})}
    if node.kind == "deconv":
        g = deconv_geometry(p, shape)
        return {"weight": g.weight_shape, **({"bias": (g.out_channels,)} if p.bias else {})}
    if node.kind == "linear":
        return {"weight": (p.out, shape[-1]), **({"bias": (p.out,)} if p.bias else {})}
    if node.kind == "layerscale":
        # a bare parameter, saved under the layer's own path
        return {"": (shape[0], *[1] * (len(shape) - 1))}
    if node.kind == "bn":
        c = shape[0]
        affine = {"weight": (c,), "bias": (c,)} if p.affine else {}
        return {**affine, "running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}
    if node.kind in ("ln", "groupnorm"):
        c = shape[-1] if getattr(p, "last", False) else shape[0]
        return {"weight": (c,), "bias": (c,)} if p.affine else {}
    return {}


def weight_shapes(network: "Network") -> dict[str, Shape]:
    """Every state_dict key of the network with its shape, in module order."""
    shapes = {}
    for node in network.graph.layers():
        for name, shape in layer_weight_shapes(node).items():
            shapes[f"{node.path}.{name}" if name else node.path] = shape
    return shapes


def fan_in(weight: Shape) -> int:
    """PyTorch's fan-in: weight.size(1) times the kernel's size."""
    return weight[1] * math.prod(weight[2:]) if len(weight) > 1 else weight[0]


def random_weights(network: "Network", seed: int = 0, statistics: bool = False) -> dict[str, "np.ndarray"]:
    """A seeded initialisation with PyTorch's default distributions.

    Conv, transposed conv and linear: weight and bias uniform in +-1/sqrt(fan_in) (what
    kaiming_uniform_(a=sqrt(5)) gives). Norms: weight 1, bias 0, running mean 0, variance 1;
    with `statistics`, random affine parameters and running statistics instead, so that a
    comparison of backends exercises batch norm (and its folding) for real.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for node in network.graph.layers():
        shapes = layer_weight_shapes(node)
        if not shapes:
            continue
        literal = getattr(node.params, "weights", None)
        for name, shape in shapes.items():
            key = f"{node.path}.{name}" if name else node.path
            if node.kind == "layerscale":
                out[key] = (rng.uniform(0.5, 1.5, shape) if statistics
                            else np.full(shape, node.params.init)).astype(np.float32)
            elif name == "num_batches_tracked":
                out[key] = np.zeros((), dtype=np.int64)
            elif node.kind in ("conv", "deconv", "linear"):
                if literal is not None:
                    out[key] = (np.array(literal, dtype=np.float32).reshape(shape) if name == "weight"
                                else np.zeros(shape, dtype=np.float32))
                    continue
                bound = 1 / math.sqrt(fan_in(shapes["weight"]))
                out[key] = rng.uniform(-bound, bound, shape).astype(np.float32)
            elif statistics:
                low, high = {"weight": (0.5, 1.5), "bias": (-0.5, 0.5), "running_mean": (-0.5, 0.5),
                             "running_var": (0.5, 2.0)}[name]
                out[key] = rng.uniform(low, high, shape).astype(np.float32)
            else:
                value = 1.0 if name in ("weight", "running_var") else 0.0
                out[key] = np.full(shape, value, dtype=np.float32)
    return out


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the network."""


def load_weights(path: str | Path) -> dict[str, "np.ndarray"]:
    """Arrays by key from a `.safetensors`, `.npz` or `.pt`/`.pth` (a state_dict) file."""
    import numpy as np

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        if suffix in (".pt", ".pth"):
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise WeightsError(f"{path} holds a {type(state).__name__}, not a state_dict")
            return {key: value.detach().cpu().numpy() for key, value in state.items()}
    except WeightsError:
        raise
    except Exception as error:  # every reader has its own exceptions; all mean "cannot read"
        raise WeightsError(f"cannot read {path}: {error}") from None
    raise WeightsError(f"{path}: weights must be .safetensors, .npz, .pt or .pth")


def check_weights(network: "Network", weights: dict) -> None:
    """Every key the network needs, with its shape; no key it does not know."""
    expected = weight_shapes(network)
    missing = [k for k in expected if k not in weights]
    unknown = [k for k in weights if k not in expected]
    wrong = [f"{k}: {tuple(weights[k].shape)} instead of {expected[k]}" for k in expected
             if k in weights and tuple(weights[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if unknown:
        problems.append("unknown " + ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    if wrong:
        problems.append("wrong shape " + "; ".join(wrong[:5]))
    if problems:
        raise WeightsError(f"the weights do not fit `{network.name}`: " + "; ".join(problems))
