"""cnnspec: a declarative compiler for convolutional network architectures.

    >>> import cnnspec
    >>> net = cnnspec.loads("input x: 1x28x28\\nconv 6 5x5 pad=2\\nflatten\\nlinear 10")
    >>> net.params, net.macs, net.output_shape
    (47206, 164640, (10,))

Only the standard library, lark and pydantic load here; torch, onnx and numpy load in the
backends that need them.
"""

from cnnspec.diagnostics import Diagnostic, SpecError
from cnnspec.network import Network, check, load, loads

__all__ = ["Diagnostic", "Network", "SpecError", "check", "load", "loads"]
__version__ = "0.1.0"
