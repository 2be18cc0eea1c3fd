"""PyTorch's module names (and a few other frameworks' spellings) for cnnspec's layer kinds, so that
a spec written from a PyTorch model meets "did you mean `bn`?" rather than a bare unknown name.

Names are matched without case, underscores or an `nn.` prefix, first whole (`Dropout2d` is
`dropout2d`), then without a trailing `1d`/`2d`/`3d` (`BatchNorm2d` is `bn`, `Conv3d` is `conv`:
cnnspec takes the rank from the kernel and the input).
"""

from __future__ import annotations

import re

#: normalised PyTorch name -> (cnnspec kind, how it is written when that differs beyond the name)
PYTORCH_NAMES: dict[str, tuple[str, str | None]] = {
    "conv": ("conv", None),
    "convolution": ("conv", None),
    "convtranspose": ("deconv", None),
    "transposedconv": ("deconv", None),
    "deconvolution": ("deconv", None),
    "batchnorm": ("bn", None),
    "batchnormalization": ("bn", None),
    "layernorm": ("ln", None),
    "groupnorm": ("groupnorm", None),
    "localresponsenorm": ("lrn", None),
    "relu": ("relu", None),
    "relu6": ("relu6", None),
    "leakyrelu": ("leaky_relu", None),
    "elu": ("elu", None),
    "gelu": ("gelu", None),
    "silu": ("silu", None),
    "swish": ("silu", None),
    "hardswish": ("hardswish", None),
    "hardsigmoid": ("hardsigmoid", None),
    "sigmoid": ("sigmoid", None),
    "tanh": ("tanh", None),
    "softmax": ("softmax", None),
    "maxpool": ("maxpool", None),
    "avgpool": ("avgpool", None),
    "averagepool": ("avgpool", None),
    "adaptiveavgpool": ("avgpool", "avgpool adaptive 7x7"),
    "globalaveragepool": ("avgpool", "avgpool global"),
    "linear": ("linear", None),
    "dense": ("linear", None),
    "fullyconnected": ("linear", None),
    "dropout": ("dropout", None),
    "dropout2d": ("dropout2d", None),
    "flatten": ("flatten", None),
    "identity": ("identity", None),
    "upsample": ("upsample", None),
    "upsamplingnearest": ("upsample", None),
    "upsamplingbilinear": ("upsample", "upsample 2 bilinear"),
    "channelshuffle": ("channel_shuffle", None),
}


def pytorch_alias(name: str) -> tuple[str, str | None] | None:
    """The cnnspec kind (and its written form where it differs) for a PyTorch module name.

    >>> pytorch_alias("BatchNorm2d"), pytorch_alias("ConvTranspose2d"), pytorch_alias("nn.ReLU")
    (('bn', None), ('deconv', None), ('relu', None))
    >>> pytorch_alias("Dropout2d"), pytorch_alias("AdaptiveAvgPool2d"), pytorch_alias("widget")
    (('dropout2d', None), ('avgpool', 'avgpool adaptive 7x7'), None)
    """
    key = re.sub(r"^nn\.", "", name.lower()).replace("_", "")
    return PYTORCH_NAMES.get(key) or PYTORCH_NAMES.get(re.sub(r"[123]d$", "", key))
