"""The output-size formulas, one per spatial dimension, exactly as PyTorch computes them."""

from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def window_output_size(n: int, k: int, s: int = 1, pad_begin: int = 0, pad_end: int = 0,
                       d: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window (conv or pool) over `n` elements.

    out = floor((n + p_begin + p_end - d*(k-1) - 1) / s) + 1

    With `ceil` the floor becomes a ceiling, and a last window that would start in the end
    padding is dropped (PyTorch's rule: if (out-1)*s >= n + p_begin, out -= 1).

    >>> window_output_size(7, 3, s=2)             # 7x7 input, 3x3 kernel, stride 2
    3
    >>> window_output_size(32, 5)                 # 32 -> 28 with a 5x5 kernel
    28
    >>> window_output_size(112, 3, 2, 1, 1)       # ResNet's stem max pool
    56
    >>> window_output_size(6, 3, 2, ceil=True), window_output_size(5, 2, 2, 1, 1, ceil=True)
    (3, 3)
    """
    span = n + pad_begin + pad_end - d * (k - 1) - 1
    if span < 0:
        return 0
    if ceil:
        out = ceil_div(span, s) + 1
        if (out - 1) * s >= n + pad_begin:
            out -= 1
        return out
    return span // s + 1


def same_padding(n: int, k: int, s: int = 1, d: int = 1) -> tuple[int, int]:
    """`same` padding: out = ceil(n / s), the extra pixel at the end (ONNX SAME_UPPER).

    total = max((out - 1)*s + d*(k-1) + 1 - n, 0), begin = total // 2, end = total - begin

    >>> same_padding(224, 3), same_padding(224, 4), same_padding(224, 3, s=2)
    ((1, 1), (1, 2), (0, 1))
    """
    out = ceil_div(n, s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def transposed_output_size(n: int, k: int, s: int = 1, pad_begin: int = 0, pad_end: int = 0,
                           d: int = 1, output_pad: int = 0) -> int:
    """Output length of a transposed convolution.

    out = (n - 1)*s - p_begin - p_end + d*(k-1) + output_pad + 1

    >>> transposed_output_size(1, 4, 1, 0, 0)     # DCGAN: 1x1 latent -> 4x4
    4
    >>> transposed_output_size(4, 4, 2, 1, 1)     # then doubling: 4 -> 8
    8
    """
    return (n - 1) * s - pad_begin - pad_end + d * (k - 1) + output_pad + 1


def adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    """The [start, end) windows of adaptive pooling from `n` to `out` elements.

    start = floor(i*n/out), end = ceil((i+1)*n/out)

    >>> adaptive_bins(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [((i * n) // out, ceil_div((i + 1) * n, out)) for i in range(out)]


def product(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result
