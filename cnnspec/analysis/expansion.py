"""How many layers a part of a spec expands to, at the least, known before it is expanded.

Elaboration refuses a spec beyond `Limits.max_layers`. Counting layers only as they are built
does all the work up to the limit first (20,000 layers take seconds); this walk reads the IR
alone and answers at once: a block call's count is kept per block and bound arguments, so
`block b40 { b39; b39 }` costs one visit per block, and a repeat multiplies.

What cannot be known without shapes (a condition, a repeat count or an argument that reads `in`
inside a block) counts as little as it could be: an unknown condition takes the smaller branch,
an unknown count or an invalid one (refused with E122, nothing expanded) counts 0. The figure is
therefore a lower bound, and a spec refused on it surely crosses the limit:

    layers(item * n) = n * layers(item)        layers(when) = layers(chosen branch)
    layers(b(args))  = layers(body of b, args) layers(residual) = main + active shortcut
"""

from __future__ import annotations

from cnnspec import ir
from cnnspec.analysis.expressions import EvalError, Evaluator, Unknown, Word, item_name
from cnnspec.layers import REGISTRY

#: counts saturate here: nested repeats could otherwise build integers of hundreds of digits
CAP = 10 ** 18

#: what a failed evaluation gives; the real elaboration reports the failure
UNKNOWN = object()


class LayerBound:
    """Lower bounds of layer counts for the statements and items of one program's blocks."""

    def __init__(self, blocks: dict[str, ir.BlockDef], max_repeat: int, max_call_depth: int):
        self.blocks = blocks
        self.max_repeat = max_repeat
        self.max_call_depth = max_call_depth
        self.memo: dict[tuple, int] = {}
        self.stack: list[str] = []

    # ---------------------------------------------------------------- values
    @staticmethod
    def value(expr, names: dict, in_shape):
        """The expression's value, or UNKNOWN: an unbound name (a Word) is unknown too."""
        try:
            value = Evaluator(names, in_shape)(expr)
        except (EvalError, Unknown, RecursionError, ArithmeticError, TypeError, ValueError):
            return UNKNOWN
        return UNKNOWN if isinstance(value, Word) else value

    def passed_item(self, expr, names: dict):
        """A block or layer kind passed by name (`stage(basic, 64)`), as a Word; else UNKNOWN."""
        if expr.node == "ref" and expr.attr is None:
            name = item_name(expr.name, names)
            if name in self.blocks or name in REGISTRY:
                return Word(name)
        return UNKNOWN

    def count(self, expr, names: dict, in_shape) -> int:
        """A repeat count as elaboration takes it; 0 where it would refuse it or cannot know it."""
        n = self.value(expr, names, in_shape)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.max_repeat:
            return 0
        return n

    # ---------------------------------------------------------------- statements and items
    def statements(self, statements, names: dict, in_shape=None) -> int:
        return min(CAP, sum(self.statement(st, names, in_shape) for st in statements))

    def statement(self, st, names: dict, in_shape=None) -> int:
        if st.node != "items":
            return 0
        if st.label is not None and st.label.endswith("}"):
            # `name{}: item * n` makes n labelled copies
            if len(st.chain) != 1:
                return 0
            item = st.chain[0]
            if item.node == "repeat":
                return min(CAP, self.count(item.count, names, in_shape) * self.item(item.item, names, in_shape))
            return self.item(item, names, in_shape)
        return min(CAP, sum(self.item(item, names, in_shape) for item in st.chain))

    def item(self, item, names: dict, in_shape=None) -> int:
        node = item.node
        if node in ("layer", "call"):
            name = item_name(item.kind if node == "layer" else item.name, names)
            if name in self.blocks:
                return self.call(self.blocks[name], item, names, in_shape)
            return int(name in REGISTRY and not (node == "call" and item.splice))
        if node == "repeat":
            return min(CAP, self.count(item.count, names, in_shape) * self.item(item.item, names, in_shape))
        if node == "use":
            # `use` applies layers counted where they are defined; past the limit it is E124 as it runs
            return 0
        parts = self.parts(item, names, in_shape)
        if parts is None:
            # a condition that cannot be known yet: the smaller branch
            return min(self.statements(item.then.body, names, in_shape),
                       self.statements(item.otherwise.body, names, in_shape) if item.otherwise else 0)
        return min(CAP, sum(self.statements(part, names, in_shape) for part in parts))

    def parts(self, item, names: dict, in_shape=None) -> list | None:
        """The statement lists a structure (a group, `when`, `residual`, `concat`, `add`, `scale`, a
        merge over values) expands in place, in order; None for a `when` whose condition is not known yet."""
        node = item.node
        if node == "group":
            return [item.body]
        if node == "when":
            condition = self.value(item.condition, names, in_shape)
            if condition is UNKNOWN:
                return None
            chosen = item.then if condition else item.otherwise
            return [chosen.body] if chosen is not None else []
        if node == "residual":
            short = item.shortcut
            condition = True if short is None or short.condition is None else self.value(short.condition, names,
                                                                                         in_shape)
            active = short is not None and condition is not UNKNOWN and bool(condition)
            return [item.main.body] + ([short.body.body] if active else [])
        if node == "value_merge":
            # the chains from its operands (`add(hi, lo -> conv 8 1x1)`), each a statement
            return [tuple(chain for chain in item.chains if chain is not None)]
        # concat, add and scale: each statement of the body is a branch, expanded once
        return [item.body.body]

    # ---------------------------------------------------------------- block calls
    def call(self, block: ir.BlockDef, item, names: dict, in_shape=None) -> int:
        """A block call: its arguments bound as elaboration binds them (a call it refuses, E120,
        expands nothing), the body counted once per distinct binding."""
        if item.node == "layer" and (item.args or item.options):
            return 0
        args = item.args if item.node == "call" else ()
        options = item.options if item.node == "call" else ()
        given = {p.name: expr for p, expr in zip(block.params, args)}
        for option in options:
            if option.key in given or option.key not in {p.name for p in block.params}:
                return 0
            given[option.key] = option.value
        if len(args) > len(block.params):
            return 0
        bound: dict = {}
        for param in block.params:
            if param.name in given:
                value = self.value(given[param.name], names, in_shape)
                if value is UNKNOWN:
                    value = self.passed_item(given[param.name], names)
            elif param.default is not None:
                value = self.value(param.default, bound, None)
            else:
                # a missing argument (E120): the call expands nothing
                return 0
            if value is not UNKNOWN:
                bound[param.name] = value
        return self.body(block, bound)

    def body(self, block: ir.BlockDef, bound: dict) -> int:
        """The layers of a block's body with its parameters bound (the unknown ones left out); its
        `in` is unknown, so the count holds for any input."""
        if block.name in self.stack or len(self.stack) >= self.max_call_depth:
            # recursion (E121) and calls nested too deeply expand nothing
            return 0
        try:
            key = (block.name, tuple(sorted(bound.items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.memo:
            return self.memo[key]
        self.stack.append(block.name)
        try:
            layers = self.statements(block.body.body, bound, None)
        finally:
            self.stack.pop()
        if key is not None:
            self.memo[key] = layers
        return layers
