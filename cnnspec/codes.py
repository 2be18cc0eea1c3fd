"""Every diagnostic code, declared once: `Code.UNKNOWN_LAYER` is `E101`, an error titled
"unknown layer or block", explained on `docs/errors/E101.md`.

A diagnostic names a member of `Code`, never a string (`Diagnostic` refuses anything else), and
takes its severity from it; a lint's title is its code's. Codes are stable: a code is never
reused for another problem. `E0xx` syntax, `E1xx` names, arguments, blocks and imports, `E2xx`
shapes, `E3xx` resource limits, `E4xx` contracts are errors; `Wxxx` codes are warnings. A
warning's member name, in lower case with dashes, is its rule's name (`bias-before-batch-norm`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Code(StrEnum):
    """One diagnostic code: its text (the member's value), `severity`, `title` and `page`."""

    title: str

    def __new__(cls, code: str, title: str) -> "Code":
        member = str.__new__(cls, code)
        member._value_ = code
        member.title = title
        return member

    # syntax
    UNEXPECTED_TOKEN = "E001", "unexpected token"
    UNEXPECTED_CHARACTER = "E002", "unexpected character"
    REPEATED_LAYER_WITH_ARGUMENTS = "E003", "a layer with arguments repeated with `*`"
    SIGNED_POSITIONAL = "E004", "a positional argument starting with `-` or `(`"
    UNCLOSED_BRACKET = "E005", "unclosed bracket"
    SPEC_TOO_LARGE = "E012", "spec too large or too deeply nested to parse"
    # layers and their arguments
    UNKNOWN_LAYER = "E101", "unknown layer or block"
    UNKNOWN_OPTION = "E102", "unknown option"
    INVALID_VALUE = "E103", "wrong value type or value out of range"
    KERNEL_AS_PRODUCT = "E104", "kernel size written as a product"
    MISSING_CHANNELS = "E105", "missing channel count"
    WRONG_POSITIONALS = "E106", "missing or extra positional argument"
    UNKNOWN_NAME = "E107", "unknown name in an expression"
    INVALID_EXPRESSION = "E108", "invalid expression"
    UNAVAILABLE_INPUT_ATTRIBUTE = "E109", "attribute of `in` not available"
    # blocks, structure, imports, declarations
    BAD_BLOCK_CALL = "E120", "wrong arguments in a block call"
    RECURSIVE_BLOCK = "E121", "recursive block"
    INVALID_REPEAT = "E122", "invalid repeat count"
    DUPLICATE_BLOCK = "E123", "block defined twice"
    TOO_MANY_LAYERS = "E124", "spec expands to too many layers"
    DUPLICATE_LABEL = "E125", "label used twice in one scope"
    MISPLACED_DECLARATION = "E126", "declaration in the wrong place"
    RESERVED_LABEL = "E127", "label reserved by PyTorch's nn.Module"
    INVALID_LABEL = "E128", "label that cannot name a module"
    IMPORT_OUTSIDE_TREE = "E130", "import outside the spec's folder tree"
    IMPORT_CYCLE = "E131", "import cycle"
    UNREADABLE_IMPORT = "E132", "imported file cannot be read"
    MISSING_INPUT = "E140", "missing `input` declaration"
    REPEATED_DECLARATION = "E141", "declaration repeated"
    DUPLICATE_INPUT = "E142", "two inputs of one name"
    UNKNOWN_INPUT = "E143", "an input size given for no declared input"
    # named values
    UNKNOWN_VALUE = "E150", "no value of that name where it is read"
    VALUE_BEFORE_BINDING = "E151", "value read before it is bound"
    # shared modules
    UNKNOWN_MODULE = "E152", "no labelled module of that name to apply again"
    SHARED_MODULE_MISMATCH = "E153", "a shared module applied where its parameters would change shape"
    # blocks over several values
    RETURNS_MISMATCH = "E154", "a block's returned values and the names bound to them disagree"
    VALUE_ARGUMENT_MISMATCH = "E155", "a value passed where an expression is expected, or the reverse"
    UNBOUND_RETURN = "E156", "a block returns a value its body never binds"
    # shapes
    RESIDUAL_MISMATCH = "E201", "residual branches disagree"
    CONCAT_MISMATCH = "E202", "concat branches disagree"
    ADD_MISMATCH = "E203", "add branches disagree"
    SCALE_MISMATCH = "E204", "scale shapes do not broadcast"
    EMPTY_STRUCTURE = "E205", "a branch or structure without layers"
    KERNEL_TOO_LARGE = "E210", "kernel larger than the padded input"
    EMPTY_OUTPUT = "E211", "output size of zero or less"
    GROUPS_MISMATCH = "E212", "groups do not divide the channels"
    KERNEL_RANK_MISMATCH = "E213", "kernel rank does not match the input"
    WRONG_INPUT_RANK = "E214", "layer cannot take an input of this rank"
    RESHAPE_MISMATCH = "E215", "reshape changes the number of elements"
    WEIGHTS_MISMATCH = "E216", "literal weights do not match the kernel"
    SIZE_CANNOT_VARY = "E220", "input size cannot vary"
    # resource limits
    TOO_MANY_PARAMS = "E301", "too many parameters"
    ACTIVATION_TOO_LARGE = "E302", "activations too large"
    OVER_MEMORY_BUDGET = "E303", "weights exceed the memory budget of a backend"
    NOT_AT_OPSET = "E304", "layer not expressible at the chosen ONNX opset"
    # contracts
    EXPECT_SHAPE_UNMET = "E401", "`expect shape` not met"
    EXPECT_BOUND_UNMET = "E402", "`expect` bound not met"
    UNKNOWN_METRIC = "E403", "unknown `expect` metric"
    # warnings
    SAME_PADDING_ASYMMETRIC = "W001", "asymmetric padding from `same`"
    UNUSED_VALUE = "W002", "a named value never read"
    SHADOWED_VALUE = "W003", "a named value bound again in its module"
    UNUSED_INPUT = "W004", "an input never read"
    # lints (cnnspec/analysis/lints.py)
    STRIDE_DROPS_ROWS = "W101", "a stride drops rows or columns of its input"
    LARGE_POOLING_WINDOW = "W102", "a pooling window larger than 3"
    LARGE_KERNEL = "W103", "a large kernel where stacked small convs would do"
    BIAS_BEFORE_BATCH_NORM = "W104", "a conv bias cancelled by the batch norm after it"
    DENSE_PARAMETER_EXPLOSION = "W105", "a dense layer holding most of the network's parameters"
    SHRINKING_UNPADDED_STACK = "W106", "unpadded convs shrinking the map fast"
    NARROW_HEAD = "W107", "a head whose receptive field does not cover the input"
    ODD_MAP_BEFORE_POOL = "W108", "an odd map before a halving pool"
    DOUBLE_ACTIVATION = "W109", "an activation right after an activation"
    DROPOUT_BEFORE_BATCH_NORM = "W110", "dropout right before batch norm"
    SOFTMAX_LAST = "W111", "softmax as the last layer"
    CHANNELS_NOT_MULTIPLE_OF_8 = "W112", "channels not a multiple of 8"
    UNUSED_BLOCK = "W113", "a block defined but never used"
    SUPPRESSION_WITHOUT_REASON = "W190", "a suppression without a reason"
    # the language server's own, about the checker rather than the spec: no number, no page
    UNUSABLE_CONFIG = "config", "the project's [tool.cnnspec] table cannot be used"
    INTERNAL = "internal", "the checker failed on this spec"

    @property
    def severity(self) -> str:
        """`warning` for W codes, `error` for every other."""
        return "warning" if self.startswith("W") else "error"

    @property
    def numbered(self) -> bool:
        """A stable code a user can write (`ignore = ["W112"]`, `cnnspec explain E201`), with a page."""
        return self[0] in "EW" and self[1:].isdigit()

    @property
    def rule_name(self) -> str:
        """A warning's rule name, as its page's heading and SARIF give it: `bias-before-batch-norm`."""
        return self.name.lower().replace("_", "-")

    @property
    def page(self) -> Path:
        """Where the page lives: `docs/lints/W104.md` for warnings, `docs/errors/E201.md` for errors."""
        from cnnspec.resources import docs_dir

        return docs_dir() / ("lints" if self.severity == "warning" else "errors") / f"{self.value}.md"

    @classmethod
    def lookup(cls, text: str) -> "Code | None":
        """The numbered code a user wrote (any case), or None: `Code.lookup("w104") is Code.BIAS_BEFORE_BATCH_NORM`."""
        code = cls._value2member_map_.get(str(text).upper())
        return code if code is not None and code.numbered else None


#: the numbered codes by their text, for looking up what a user wrote: code -> (severity, title)
CODES: dict[str, tuple[str, str]] = {code.value: (code.severity, code.title) for code in Code if code.numbered}


def page_path(code: str) -> Path:
    """The page of a numbered code given as text (`page_path("W104")`)."""
    return Code(code).page
