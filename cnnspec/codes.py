"""Every diagnostic code, in one table: code -> (severity, one-line title).

Codes are stable: a code is never reused for another problem. `E0xx` syntax, `E1xx` names,
arguments, blocks and imports, `E2xx` shapes, `E3xx` resource limits, `E4xx` contracts,
`Wxxx` warnings.
"""

from __future__ import annotations

CODES: dict[str, tuple[str, str]] = {
    # syntax
    "E001": ("error", "unexpected token"),
    "E002": ("error", "unexpected character"),
    "E003": ("error", "a layer with arguments repeated with `*`"),
    "E004": ("error", "a positional argument starting with `-` or `(`"),
    "E005": ("error", "unclosed bracket"),
    "E012": ("error", "spec too large or too deeply nested to parse"),
    # layers and their arguments
    "E101": ("error", "unknown layer or block"),
    "E102": ("error", "unknown option"),
    "E103": ("error", "wrong value type or value out of range"),
    "E104": ("error", "kernel size written as a product"),
    "E105": ("error", "missing channel count"),
    "E106": ("error", "missing or extra positional argument"),
    "E107": ("error", "unknown name in an expression"),
    "E108": ("error", "invalid expression"),
    "E109": ("error", "attribute of `in` not available"),
    # blocks, structure, imports, declarations
    "E120": ("error", "wrong arguments in a block call"),
    "E121": ("error", "recursive block"),
    "E122": ("error", "invalid repeat count"),
    "E123": ("error", "block defined twice"),
    "E124": ("error", "spec expands to too many layers"),
    "E125": ("error", "label used twice in one scope"),
    "E126": ("error", "declaration in the wrong place"),
    "E127": ("error", "label reserved by PyTorch's nn.Module"),
    "E130": ("error", "import outside the spec's folder tree"),
    "E131": ("error", "import cycle"),
    "E132": ("error", "imported file cannot be read"),
    "E140": ("error", "missing `input` declaration"),
    "E141": ("error", "declaration repeated"),
    # shapes
    "E201": ("error", "residual branches disagree"),
    "E202": ("error", "concat branches disagree"),
    "E203": ("error", "add branches disagree"),
    "E204": ("error", "scale shapes do not broadcast"),
    "E205": ("error", "a branch or structure without layers"),
    "E210": ("error", "kernel larger than the padded input"),
    "E211": ("error", "output size of zero or less"),
    "E212": ("error", "groups do not divide the channels"),
    "E213": ("error", "kernel rank does not match the input"),
    "E214": ("error", "layer cannot take an input of this rank"),
    "E215": ("error", "reshape changes the number of elements"),
    "E216": ("error", "literal weights do not match the kernel"),
    # resource limits
    "E301": ("error", "too many parameters"),
    "E302": ("error", "activations too large"),
    "E303": ("error", "weights exceed the memory budget of a backend"),
    "E304": ("error", "layer not expressible at the chosen ONNX opset"),
    # contracts
    "E401": ("error", "`expect shape` not met"),
    "E402": ("error", "`expect` bound not met"),
    "E403": ("error", "unknown `expect` metric"),
    # warnings
    "W001": ("warning", "asymmetric padding from `same`"),
    # lints (cnnspec/analysis/lints.py), each with a page in docs/lints/
    "W101": ("warning", "a stride drops rows or columns of its input"),
    "W102": ("warning", "a pooling window larger than 3"),
    "W103": ("warning", "a large kernel where stacked small convs would do"),
    "W104": ("warning", "a conv bias cancelled by the batch norm after it"),
    "W105": ("warning", "a dense layer holding most of the network's parameters"),
    "W106": ("warning", "unpadded convs shrinking the map fast"),
    "W107": ("warning", "a head whose receptive field does not cover the input"),
    "W108": ("warning", "an odd map before a halving pool"),
    "W109": ("warning", "an activation right after an activation"),
    "W110": ("warning", "dropout right before batch norm"),
    "W111": ("warning", "softmax as the last layer"),
    "W112": ("warning", "channels not a multiple of 8"),
    "W113": ("warning", "a block defined but never used"),
    "W190": ("warning", "a suppression without a reason"),
}


def severity(code: str) -> str:
    return CODES[code][0]


def page_path(code: str):
    """Where the page of a code lives: `docs/lints/W104.md` for warnings, `docs/errors/` for errors."""
    from cnnspec.resources import docs_dir

    return docs_dir() / ("lints" if severity(code) == "warning" else "errors") / f"{code}.md"
