"""The elaborator's weight sharing: `fb = b -> use encoder`.

`use LABEL` applies the module labelled `LABEL` (a labelled layer, labelled group or labelled block
call) again, to the tensor flowing in, with the same parameters: in PyTorch, the same module called
again. `LABEL` is a state_dict path below the scope the `use` is written in (`encoder`, or
`encoder.stem` for a labelled item inside it), labelled above the `use`: a module's `forward` can
call its own submodules, and no other module's.

The application is elaborated again from its definition at the new input (block calls bound again,
their `in` the new shape), with the definition's paths. Its rows count MACs and activations, as each
application computes them, and no parameters, buffers or layers, which are the module's once. Every
layer must keep its parameters and buffers: the same input rank, the same state shapes (E153, naming
the `use` and the module's first application otherwise); an unknown label is E152. Warnings raised
again in an application are those of the first one, not repeated.

A labelled call of a block over values is applied again to other values, `(h3, l3) = use
exchange(h2, l2)`: its value parameters read the values named where the `use` stands (in its
module, which computes them), its other arguments are the first call's (`value_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cnnspec import ir
from cnnspec.analysis.context import Env, Flow, Reporting, Scope, Site
from cnnspec.codes import Code
from cnnspec.diagnostics import Label
from cnnspec.graph import layers_under
from cnnspec.layers import REGISTRY
from cnnspec.layers.base import describe_shape
from cnnspec.wording import closest


@dataclass(frozen=True)
class Definition:
    """A labelled module as first applied: enough to elaborate it again elsewhere."""

    path: str
    chain: tuple
    #: the scope its label was claimed in, and the environment it was elaborated in
    scope: Scope
    env: Env
    span: ir.Span
    in_shape: tuple[int, ...]
    #: the graph node its first application made (a layer, or a scoped sequence)
    node: Any


def state_signature(node) -> list[tuple]:
    """What a module's parameters and buffers are, layer by layer: each layer's path, kind, input
    rank and state_dict entries with their shapes (the module's own uses of others left out)."""
    return [(layer.path, layer.kind, len(layer.in_shape),
             tuple((t.key, t.shape) for t in REGISTRY[layer.kind].state(layer.params, layer.in_shape)))
            for layer in layers_under(node)]


def shared_copy(node):
    """An application of a module defined earlier, marked so that the backends build nothing for it:
    a scope or a layer itself; a plain container (a call of a block over values, whose layers run
    in the caller's module) and every layer and scope in it, which the backends meet one by one."""
    if node.node == "layer" or (node.node == "seq" and node.scope is not None):
        return node.model_copy(update={"shared": True})
    if node.node == "merge":
        return node.model_copy(update={"branches": tuple(shared_copy(b) for b in node.branches)})
    return node.model_copy(update={"items": tuple(shared_copy(i) for i in node.items), "shared": True})


class Sharing(Reporting):
    #: every labelled module by its path, as first applied (None where that application failed)
    definitions: dict[str, Definition | None]
    #: how many applications of shared modules are being elaborated (their rows hold no state)
    sharing: int
    rows: list

    def define(self, path: str, chain, scope: Scope, env: Env, span: ir.Span, in_shape, items: list,
               before: int) -> None:
        """Remember the labelled module just elaborated at `path`: None if it made no node (its own
        error is reported), so that applying it again is not a second one."""
        if path not in self.definitions:
            made = len(items) > before and in_shape is not None
            self.definitions[path] = Definition(path, tuple(chain), scope, env, span, in_shape, items[-1]) if made else None

    def error(self, code: Code, message: str, span, **details) -> None:
        # an application of a shared module raises its first application's warnings again
        if self.sharing and code.severity == "warning" and any(
                d.code == code and d.span == span for d in self.diagnostics):
            return
        super().error(code, message, span, **details)

    def use(self, item: ir.Use, flow: Flow, scope: Scope, env: Env, items: list) -> Flow:
        """`use LABEL`: the module at `LABEL` below `scope` elaborated again on `flow`, shared."""
        path = scope.join(item.label)
        definition = self.definitions.get(path)
        if definition is None:
            if path not in self.definitions:
                self.unknown_module(item, path, scope, env)
            return Flow(None, ())
        block = self.value_block_of(definition)
        env_of_call = definition.env
        if block is not None or item.values:
            values = self.values_applied_again(item, definition, block, env)
            if values is None:
                return Flow(None, ())
            # the call's values are computed where the `use` stands, from the values it names
            env_of_call = replace(definition.env, values=env.values)
            self.applied_to = values or None
        if flow.shape is None:
            self.applied_to = None
            return Flow(None, ())
        sub: list = []
        in_shape, first_row = flow.shape, len(self.rows)
        self.sharing += 1
        try:
            with self.inside(Site(item.span)):
                flow = self.labelled(path, definition.chain, flow, definition.scope, env_of_call, sub,
                                     definition.span)
        finally:
            self.sharing -= 1
            self.applied_to = None
        if not sub or flow.shape is None:
            return Flow(None, ())
        if not self.same_state(definition, sub[-1], item, in_shape):
            return Flow(None, ())
        if len(self.rows) > first_row:
            self.rows[first_row].extra["uses"] = item.label
        items.append(shared_copy(sub[-1]))
        return flow

    def same_state(self, definition: Definition, node, item: ir.Use, in_shape) -> bool:
        """Whether the application keeps every parameter and buffer of the module's first one (E153
        at the first that would differ, naming both places)."""
        old, new = state_signature(definition.node), state_signature(node)
        if old == new:
            return True
        here = describe_shape(in_shape)
        first = Label(span=definition.span, message=f"first applied here, to {describe_shape(definition.in_shape)}")
        if item.values:
            # a call over values: what changed comes from the values passed, not the tensor flowing in
            here = "the values " + ", ".join(f"`{name.name}`" for name in item.values)
            first = Label(span=definition.span, message="first applied here")
        changed = next(((a, b) for a, b in zip(old, new) if a != b), None)
        if changed is None or changed[0][:2] != changed[1][:2]:
            message = f"`use {item.label}` on {here} makes other layers than its first application"
            help = "a block whose `when` or sizes follow `in` expands differently at this input"
        elif changed[0][2] != changed[1][2]:
            (layer, _, rank, _), (_, _, new_rank, _) = changed
            message = (f"`use {item.label}` on {here} gives `{layer}` a {new_rank - 1}-d input where its first "
                       f"application gives it a {rank - 1}-d one")
            help = "apply a module again to inputs of the rank it was first applied to"
        else:
            (layer, _, _, was), (_, _, _, now) = changed
            key, shape, before = next((k, s, dict(was).get(k)) for k, s in now if dict(was).get(k) != s)
            entry = f"{layer}.{key}" if key else layer
            message = (f"`use {item.label}` on {here} would give `{entry}` the shape {describe_shape(shape)}, "
                       f"where its first application has {describe_shape(before)}")
            fit = ("values of the shapes its first application read" if item.values else
                   f"inputs its parameters fit (it was first applied to {describe_shape(definition.in_shape)})")
            help = f"a shared module keeps its parameters: apply it to {fit}, or give this one a module of its own"
        self.error(Code.SHARED_MODULE_MISMATCH, message, item.span, label=f"applied again to {here}",
                   labels=(first,), help=help)
        return False

    def unknown_module(self, item: ir.Use, path: str, scope: Scope, env: Env) -> None:
        if any(s == item.label or s.endswith("." + item.label) for s in env.scopes):
            self.error(Code.UNKNOWN_MODULE, f"`use {item.label}` inside `{item.label}` itself", item.label_span,
                       label="the module being defined", help="a module cannot apply itself: apply it after its end")
            return
        prefix = scope.join("")
        visible = [p[len(prefix):] for p in self.definitions if p.startswith(prefix)] if prefix else list(self.definitions)
        near = closest(item.label, visible)
        elsewhere = [p for p in self.definitions if p.endswith("." + item.label) or p == item.label]
        if near:
            help = f"did you mean `{near}`?"
        elif elsewhere:
            help = (f"`{elsewhere[0]}` belongs to another module: a labelled group or a block applies only "
                    "modules labelled inside it")
        else:
            help = "label the module where it is first applied (`encoder: { ... }`), then `use encoder` below it"
        self.error(Code.UNKNOWN_MODULE, f"no module labelled `{item.label}` to apply again here", item.label_span,
                   label="not a labelled module above this point", help=help)
