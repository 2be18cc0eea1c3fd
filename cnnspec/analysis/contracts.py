"""Contracts: `expect shape` at a point of the network, and `expect METRIC OP VALUE` bounds on the
totals of the network or of one block call, checked once the totals are known. At an
overridden input (`--input`, `input=`) the contracts on figures that grow with the input are
skipped, not failed.
"""

from __future__ import annotations

from cnnspec import ir
from cnnspec.analysis.context import Flow, Frame, Reporting
from cnnspec.codes import Code
from cnnspec.layers.base import describe_shape
from cnnspec.wording import closest, human

METRICS = ("params", "macs", "flops", "buffers", "layers", "memory", "activations")


#: the metrics that grow with the input's size: their contracts do not hold at another input
INPUT_METRICS = frozenset({"macs", "flops", "memory", "activations"})


def format_metric(metric: str, value: int) -> str:
    unit = {"params": "parameters", "macs": "MACs", "flops": "FLOPs", "buffers": "buffer elements",
            "layers": "layers", "memory": "activation bytes", "activations": "activation bytes"}[metric]
    return f"{value:,} {unit} ({human(value)})"


class Contracts(Reporting):
    """The elaborator's contracts; `skipped` collects those an overridden input leaves unchecked."""

    overridden_input: bool
    skipped: dict[int, ir.Node]

    def expect_metric(self, st: ir.ExpectMetric, frame: Frame) -> None:
        """An `expect` bound, kept on the frame it bounds until the frame's totals are known."""
        if st.metric not in METRICS:
            near = closest(st.metric, METRICS)
            self.error(Code.UNKNOWN_METRIC, f"unknown metric `{st.metric}` in `expect`", st.span,
                       help=f"did you mean `{near}`?" if near else "metrics are " + ", ".join(f"`{m}`" for m in METRICS))
        else:
            frame.expects.append(st)

    def expect_shape(self, st: ir.ExpectShape, flow: Flow, what: str = "the shape here") -> None:
        """`expect shape 512x7x7` of the tensor flowing here, or (`what`) of a named value."""
        if st.metric != "shape":
            # a shape written after another word: most often the shape the network should give
            instead = f"for the shape here, write `expect shape {describe_shape(st.dims)}`"
            if st.metric in METRICS:
                if len(st.dims) == 1:  # a bare number: most often the bound without its comparison
                    instead = f"to bound it, write `expect {st.metric} == {st.dims[0]}`; {instead}"
                self.error(Code.UNKNOWN_METRIC, f"`expect {st.metric}` takes a comparison, such as `expect {st.metric} < 5M`",
                           st.span, help=instead)
            else:
                self.error(Code.UNKNOWN_METRIC, f"`expect {st.metric}` is not an expectation: only `expect shape` takes a shape",
                           st.span, help=instead)
            return
        if self.overridden_input:
            self.skipped[id(st)] = st
            return
        if flow.shape is not None and tuple(st.dims) != flow.shape:
            self.error(Code.EXPECT_SHAPE_UNMET, f"expected shape {describe_shape(st.dims)}, found {describe_shape(flow.shape)}", st.span,
                       label=f"{what} is {describe_shape(flow.shape)}")

    def check_expects(self, frame: Frame, where: str) -> None:
        if any(d.severity == "error" for d in self.diagnostics) and frame.expects:
            # totals after an error are incomplete: do not pile contract failures on top
            return
        for st in frame.expects:
            if self.overridden_input and st.metric in INPUT_METRICS:
                self.skipped[id(st)] = st
                continue
            actual = frame.metric(st.metric)
            ok = {"<": actual < st.value, "<=": actual <= st.value, ">": actual > st.value,
                  ">=": actual >= st.value, "==": actual == st.value, "!=": actual != st.value}[st.op]
            if not ok:
                self.error(Code.EXPECT_BOUND_UNMET, f"`expect {st.metric} {st.op} {st.text}` is not met: {where} has "
                                   f"{format_metric(st.metric, actual)}", st.span,
                           label=f"actual {format_metric(st.metric, actual)}")
