"""PyTorch's module names (and a few other frameworks' spellings) for cnnspec's layer kinds, so that
a spec written from a PyTorch model meets "did you mean `bn`?" rather than a bare unknown name.

Names are matched without case, underscores or an `nn.` prefix, first whole (`Dropout2d` is
`dropout2d`), then without a trailing `1d`/`2d`/`3d` (`BatchNorm2d` is `bn`, `Conv3d` is `conv`:
cnnspec takes the rank from the kernel and the input).
"""

from __future__ import annotations

import functools
import re

from cnnspec.layers import REGISTRY


@functools.cache
def pytorch_names() -> dict[str, tuple[str, str | None]]:
    """Normalised name -> (cnnspec kind, how it is written when that differs beyond the name):
    each kind's own name and the names it declares (`LayerKind.pytorch_names`)."""
    names: dict[str, tuple[str, str | None]] = {}
    for kind in REGISTRY.values():
        names[normalised(kind.name)] = (kind.name, None)
        names.update((other, (kind.name, written)) for other, written in kind.pytorch_names.items())
    return names


def normalised(name: str) -> str:
    """A module name without case, underscores or an `nn.` prefix: `nn.Leaky_ReLU` -> `leakyrelu`."""
    return re.sub(r"^nn\.", "", name.lower()).replace("_", "")


def pytorch_alias(name: str) -> tuple[str, str | None] | None:
    """The cnnspec kind (and its written form where it differs) for a PyTorch module name.

    >>> pytorch_alias("BatchNorm2d"), pytorch_alias("ConvTranspose2d"), pytorch_alias("nn.ReLU")
    (('bn', None), ('deconv', None), ('relu', None))
    >>> pytorch_alias("Dropout2d"), pytorch_alias("AdaptiveAvgPool2d"), pytorch_alias("widget")
    (('dropout2d', None), ('avgpool', 'avgpool adaptive 7x7'), None)
    """
    key, names = normalised(name), pytorch_names()
    return names.get(key) or names.get(re.sub(r"[123]d$", "", key))
