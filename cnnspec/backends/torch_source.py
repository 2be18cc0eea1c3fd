"""`cnnspec emit torch`: a spec as readable PyTorch source that imports only torch.

The generated module has the same state_dict as `Network.to_torch()`: every layer is built
from the same lowering (`torch_lowering`), at the same path. What makes it read like code
written by hand:

- a scope whose items are numbered layers or scopes becomes an `nn.Sequential`;
- any other scope becomes a class with named submodules and a `forward` written out
  (`y = self.conv1(x)` ... `x = y + self.downsample(x)`);
- a block's instances share one class per structure; the numbers that differ between
  instances become constructor arguments, named after the block's own parameters where
  they match (`c`, `c * 4`), or `in_channels`;
- unlabelled layers without state (relu, pooling, dropout) are named after their kind
  and shared when identical, as torchvision does.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnnspec.backends import torch_lowering
from cnnspec.backends.naming import unique_name
from cnnspec.backends.torch_lowering import lower
from cnnspec.graph import LayerNode, MergeNode, SeqNode, opened

if TYPE_CHECKING:
    from cnnspec.graph import CheckedGraph

INDENT = "    "

#: helpers copied into the generated file when a spec needs them (classes and functions)
FILE_HELPERS = (*torch_lowering.HELPERS, "center_crop", "with_weights")
#: every name the generated file imports, defines besides its classes, or relies on: no class
#: or constructor parameter may take one (`class F` would hide `torch.nn.functional as F`)
RESERVED = frozenset({"torch", "nn", "F", "self", *FILE_HELPERS, *keyword.kwlist, *dir(builtins)})


def emit_torch_source(network: "CheckedGraph") -> str:
    """The network as a Python module defining one `nn.Module` class per spec (and per block)."""
    return SourceEmitter(network).emit()


def camel(name: str) -> str:
    """`basic_block` -> `BasicBlock`.

    >>> camel("basic_block"), camel("resnet18"), camel("lenet5-d2l")
    ('BasicBlock', 'Resnet18', 'Lenet5D2l')
    """
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name.replace("_", " ")) if w]
    text = "".join(w[0].upper() + w[1:] for w in words) or "CheckedGraph"
    return text if text[0].isalpha() else "Net" + text


def network_class_name(name: str) -> str:
    """The class `cnnspec emit torch` writes for a network called `name`: named first, so only
    the file's reserved names push it aside.

    >>> network_class_name("resnet18"), network_class_name("f"), network_class_name("none")
    ('Resnet18', 'F2', 'None2')
    """
    return unique_name(camel(name), RESERVED)


def python_name(name: str) -> str:
    """A valid Python identifier for a parameter name."""
    name = re.sub(r"\W", "_", name)
    if not name or name[0].isdigit():
        name = "_" + name
    return name + "_" if keyword.iskeyword(name) else name


def is_attribute(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def containers(items, prefix: str):
    """The scope paths that dotted labels place items into, below the scopes they are written in:
    `classifier` for `classifier.cbr: ...` written at the top."""
    for item in opened(items):
        if item.node == "merge":
            for branch in item.branches:
                yield from containers(branch.items, prefix)
            continue
        if is_mark(item) or item.shared:
            continue
        parts = (item.path if item.node == "layer" else item.scope)[len(prefix):].split(".")
        for depth in range(1, len(parts)):
            yield prefix + ".".join(parts[:depth])
        if item.node == "seq":
            yield from containers(item.items, item.scope + ".")


def is_mark(item) -> bool:
    """A flattened item that reads (`source`) or stores (`bind`) a named value."""
    return item.node == "seq" and item.scope is None


#: the forward's own variables: its input and the temporaries of merge branches
FORWARD_VARIABLES = re.compile(r"x|y|z|u|v|w|y[0-9]+")


def value_variable(key: str) -> str:
    """The Python variable of a named value: its name (`c2` for the key `layer1:c2`), `_2` for
    the second value of one name in one scope, `_` after a name the forward or the file uses."""
    name = key.rsplit(":", 1)[-1].replace("#", "_")
    if FORWARD_VARIABLES.fullmatch(name) or name in RESERVED:
        name += "_"
    return name


def first_input_channels(seq: SeqNode) -> int | None:
    for item in seq.items:
        if item.node in ("layer", "merge"):
            return item.in_shape[0]
        found = first_input_channels(item)
        if found is not None:
            return found
    return None


@dataclass
class ScopeBody:
    """One scope needing a class: its members and forward, written with literal numbers."""

    seq: SeqNode
    key: str                      # the class family: a block name or a label
    init: list[str]               # `self.x = ...` lines; child scopes as `{{scope:PATH}}` tokens
    forward: list[str]
    members: set[str]
    expression: str | None = None  # once resolved: the instantiation, `Basic(64, 1)`


@dataclass
class ClassDef:
    name: str
    params: list[str]
    init: list[str]
    forward: list[str]
    doc: str
    #: the forward's tensors: the network's inputs in declaration order, `x` for every other class
    inputs: tuple[str, ...] = ("x",)


CHILD = re.compile(r"\{\{scope:([^}]*)\}\}")


@dataclass
class SourceEmitter:
    network: "CheckedGraph"
    bodies: dict[str, ScopeBody] = field(default_factory=dict)
    classes: list[ClassDef] = field(default_factory=list)
    class_names: set[str] = field(default_factory=set)
    helpers: set[str] = field(default_factory=set)
    #: the attribute each layer is called through in its class's forward
    attribute_of: dict[str, str] = field(default_factory=dict)
    uses_functional: bool = False
    uses_torch: bool = False

    # ---------------------------------------------------------------- entry
    def emit(self) -> str:
        graph = self.network.graph
        self.lowerings = {node.path: lower(node) for node in graph.layers()}
        self.stateful = {row.path for row in self.network.rows if row.params or row.buffers}
        network_class = network_class_name(graph.name)
        self.class_names |= {network_class, *RESERVED}
        self.reopened = set(containers(graph.body.items, ""))
        top = self.scope_body(graph.body, "", key="")
        if graph.outputs:
            # the values the spec names as its outputs, by name, as the built module returns them
            returned = ", ".join(f"{name!r}: {value_variable(key)}" for name, key, _, _ in graph.outputs)
            top.forward[-1] = f"return {{{returned}}}"
        self.resolve_scopes()
        init = [CHILD.sub(lambda m: self.bodies[m.group(1)].expression, line) for line in top.init]
        doc = (f"{graph.name}: {self.network.describe_inputs()} -> {self.network.describe_outputs()}, "
               f"{self.network.params:,} parameters, {self.network.macs:,} MACs.")
        inputs = ("x",)
        if len(graph.inputs) > 1:
            # every input by its value's name, in declaration order; the first flows on as `x`
            inputs = tuple(value_variable(key) for _, key, _ in graph.inputs)
            top.forward.insert(0, f"x = {inputs[0]}")
        self.classes.append(ClassDef(network_class, [], init, top.forward, doc, inputs))
        return self.render()

    # ---------------------------------------------------------------- scopes
    def child_expression(self, seq: SeqNode) -> str:
        """The constructor of a child scope: an inline `nn.Sequential`, or a class resolved later."""
        items = opened(seq.items)
        prefix = seq.scope + "."
        plain = all(item.node == "layer" and self.lowerings[item.path].pad is None
                    and self.lowerings[item.path].parameter is None and self.lowerings[item.path].module is not None
                    and self.lowerings[item.path].size_from is None
                    or item.node == "seq" and not is_mark(item)
                    for item in items)
        # a scope that a dotted label adds to stays a class: an nn.Sequential would run the addition too
        numbered = plain and seq.scope not in self.reopened and [
            self.relative(item, prefix) for item in items] == [str(i) for i in range(len(items))]
        if items and numbered:
            parts = [self.layer_constructor(item) if item.node == "layer" else self.child_expression(item)
                     for item in items]
            inner = ",\n".join(INDENT + part.replace("\n", "\n" + INDENT) for part in parts)
            return f"nn.Sequential(\n{inner},\n)"
        key = seq.block or (seq.scope.rsplit(".", 1)[-1])
        self.scope_body(seq, prefix, key)
        return "{{scope:" + seq.scope + "}}"

    @staticmethod
    def relative(item, prefix: str) -> str:
        path = item.path if item.node == "layer" else item.scope
        return path[len(prefix):]

    def scope_body(self, seq: SeqNode, prefix: str, key: str) -> ScopeBody:
        body = ScopeBody(seq, key, [], [], set())
        self.bodies[seq.scope or ""] = body
        # labels keep their names; stateless layers are named around them
        body.members = {name for name in map(lambda item: self.relative(item, prefix), self.members_of(seq.items))
                        if not name.isdigit()}
        self.declare(seq.items, prefix, body, shared={})
        body.forward = self.forward_lines(seq.items, prefix)
        return body

    def members_of(self, items):
        for item in opened(items):
            if item.node == "merge":
                for branch in item.branches:
                    yield from self.members_of(branch.items)
            elif not is_mark(item) and not item.shared:
                # (a module applied again by `use` is declared at its first application)
                yield item

    def declare(self, items, prefix: str, body: ScopeBody, shared: dict[str, str]) -> None:
        for item in self.members_of(items):
            if item.node == "layer":
                self.declare_layer(item, prefix, body, shared)
            else:
                name = self.relative(item, prefix)
                body.init.append(self.place(name, self.child_expression(item), body))
                body.members.add(name)

    def declare_layer(self, node: LayerNode, prefix: str, body: ScopeBody, shared: dict[str, str]) -> None:
        name = self.relative(node, prefix)
        lowering = self.lowerings[node.path]
        if lowering.parameter is not None:
            shape, value = lowering.parameter
            self.uses_torch = True
            parameter = f"nn.Parameter(torch.full({shape!r}, {value!r}))"
            body.init.append(self.place(name, parameter, body, register="register_parameter"))
            body.members.add(name)
            self.attribute_of[node.path] = name
            return
        if lowering.size_from is not None or lowering.inline is not None:
            # a call or an expression in the forward, no module
            return
        constructor = self.layer_constructor(node)
        if node.path not in self.stateful and name.isdigit():
            # a stateless unlabelled layer: named after its kind, shared when identical
            if constructor not in shared:
                attribute = unique_name(node.kind, body.members)
                shared[constructor] = attribute
                body.init.append(self.assignment(attribute, constructor))
                body.members.add(attribute)
            self.attribute_of[node.path] = shared[constructor]
            return
        body.init.append(self.place(name, constructor, body))
        body.members.add(name)
        self.attribute_of[node.path] = name

    def layer_constructor(self, node: LayerNode) -> str:
        lowering = self.lowerings[node.path]
        if lowering.module.is_helper:
            self.helpers.add(lowering.module.name)
        text = lowering.module.source()
        if lowering.weights is not None or lowering.frozen:
            text = self.literal_kernel(lowering, text)
        return text

    def literal_kernel(self, lowering, text: str) -> str:
        """A module with spec-given weights, or frozen: built by a small helper in the file."""
        self.helpers.add("with_weights")
        self.uses_torch = True
        weights = "None" if lowering.weights is None else repr(lowering.weights)
        return f"with_weights({text}, {weights}, frozen={lowering.frozen})"

    @staticmethod
    def assignment(name: str, expression: str, register: str = "add_module") -> str:
        if is_attribute(name):
            return f"self.{name} = {expression}"
        return f"self.{register}({name!r}, {expression})"

    def place(self, name: str, expression: str, body: ScopeBody, register: str = "add_module") -> str:
        """The line(s) registering `expression` as `name` below this class: a dotted name (a dotted
        label's) goes into the scope it names, made a plain `nn.Module` first if this class has no
        member there yet, as `to_torch()` makes it."""
        *parents, last = name.split(".")
        if not parents:
            return self.assignment(name, expression, register)
        lines = []
        for depth in range(1, len(parents) + 1):
            container = ".".join(parents[:depth])
            if container not in body.members:
                lines.append(self.place(container, "nn.Module()", body))
                body.members.add(container)
        if all(map(is_attribute, name.split("."))):
            lines.append(f"self.{name} = {expression}")
        else:
            lines.append(f"self.get_submodule({'.'.join(parents)!r}).{register}({last!r}, {expression})")
        return "\n".join(lines)

    # ---------------------------------------------------------------- forward
    def member(self, name: str, parameter: bool = False) -> str:
        if all(map(is_attribute, name.split("."))):
            return f"self.{name}"
        if "." in name:
            return f"self.{'get_parameter' if parameter else 'get_submodule'}({name!r})"
        return f"getattr(self, {name!r})"

    def call(self, item, prefix: str, source: str) -> str | None:
        """`self.conv1(x)` for a layer or child scope; `None` for what needs several lines."""
        if item.node == "layer":
            lowering = self.lowerings[item.path]
            # a labelled layer applied again (`use`) may belong to a scope below this class
            attribute = self.relative(item, prefix) if item.shared else self.attribute_of.get(item.path)
            if lowering.parameter is not None:
                return f"{self.member(attribute, parameter=True)} * {source}"
            if lowering.inline is not None:
                self.uses_torch = self.uses_torch or lowering.inline.startswith("torch.")
                return lowering.inline.format(x=source)
            if lowering.size_from is not None:
                self.uses_functional = True
                options = "".join(f", {k}={v!r}" for k, v in lowering.module.kwargs)
                return f"F.{lowering.module.name}({source}, size={value_variable(lowering.size_from)}.shape[2:]{options})"
            if lowering.pad is not None:
                self.uses_functional = True
                mode = "" if lowering.pad_mode == "constant" else f", mode={lowering.pad_mode!r}"
                source = f"F.pad({source}, {lowering.pad}{mode})"
            return f"{self.member(attribute)}({source})"
        if item.node == "seq" and item.scope is not None:
            return f"{self.member(self.relative(item, prefix))}({source})"
        return None

    def forward_lines(self, items, prefix: str) -> list[str]:
        self.fresh = iter(["y", "z", "u", "v", "w"] + [f"y{i}" for i in range(2, 10_000)])
        lines = self.sequence(opened(items), prefix, "x", "x")
        return lines + ["return x"]

    def sequence(self, items, prefix: str, source: str, target: str) -> list[str]:
        """Lines computing `target` from `source` through `items`."""
        lines: list[str] = []
        current = source
        for item in items:
            if is_mark(item):
                if item.source is not None:
                    current = value_variable(item.source)
                else:
                    lines.append(f"{value_variable(item.bind)} = {current}")
                continue
            expression = self.call(item, prefix, current)
            if expression is not None:
                lines.append(f"{target} = {expression}")
            else:
                lines += self.merge(item, prefix, current, target)
            current = target
        if current != target:
            lines.append(f"{target} = {current}")
        return lines

    def branch(self, items, prefix: str, source: str) -> tuple[list[str], str]:
        """A merge branch: its lines, and the expression of its result."""
        items = opened(items)
        if items and is_mark(items[0]) and items[0].source is not None:
            # a branch that starts from a named value: `add(a, b)` reads `a + b`
            source, items = value_variable(items[0].source), items[1:]
        if not items:
            return [], source
        if len(items) == 1:
            expression = self.call(items[0], prefix, source)
            if expression is not None:
                return [], expression
        name = next(self.fresh)
        return self.sequence(items, prefix, source, name), name

    def merge(self, merge: MergeNode, prefix: str, source: str, target: str) -> list[str]:
        lines, results = [], []
        for branch in merge.branches:
            branch_lines, result = self.branch(branch.items, prefix, source)
            lines += branch_lines
            results.append(result)
        if merge.op == "concat":
            self.uses_torch = True
            joined = f"[{', '.join(results)}]"
            if merge.crop:
                self.helpers.add("center_crop")
                joined = f"center_crop({joined})"
            lines.append(f"{target} = torch.cat({joined}, dim=1)")
        else:
            lines.append(f"{target} = {(' + ' if merge.op == 'add' else ' * ').join(results)}")
        return lines

    # ---------------------------------------------------------------- classes
    def resolve_scopes(self) -> None:
        """Give every class-scope its class and instantiation, innermost first."""
        pending = {path: body for path, body in self.bodies.items() if path}
        while pending:
            ready = [body for body in pending.values()
                     if all(child not in pending for line in body.init for child in CHILD.findall(line))]
            families: dict[str, list[ScopeBody]] = {}
            for body in ready:
                body.init = [CHILD.sub(lambda m: self.bodies[m.group(1)].expression, line) for line in body.init]
                families.setdefault(body.key, []).append(body)
                del pending[body.seq.scope]
            for key, members in families.items():
                self.define_classes(key, members)

    def define_classes(self, key: str, bodies: list[ScopeBody]) -> None:
        groups: dict[tuple, list[tuple[ScopeBody, list]]] = {}
        for body in bodies:
            skeleton, values = template("\n".join(body.init))
            groups.setdefault((skeleton, "\n".join(body.forward)), []).append((body, values))
        ordered = sorted(groups.items(), key=lambda g: -len(g[1]))
        base_members = ordered[0][1][0][0].members
        for (skeleton, forward), instances in ordered:
            extra = sorted(instances[0][0].members - base_members)
            name = self.class_name(camel(key) + ("With" + "And".join(camel(e) for e in extra) if extra else ""))
            params, slots, arguments = parameterise(instances)
            init = fill(skeleton, slots).split("\n")
            block = instances[0][0].seq.block
            doc = f"The spec's block `{block}`" if block else f"The spec's group `{key}`"
            if extra:
                doc += ", with " + " and ".join(f"`{e}`" for e in extra)
            doc += "."
            self.classes.append(ClassDef(name, params, init, forward.split("\n"), doc))
            for (body, _), args in zip(instances, arguments):
                body.expression = f"{name}({', '.join(map(str, args))})"

    def class_name(self, wanted: str) -> str:
        name = unique_name(wanted, self.class_names)
        self.class_names.add(name)
        return name

    # ---------------------------------------------------------------- output
    def render(self) -> str:
        out = io.StringIO()
        graph = self.network.graph
        out.write(f"# {graph.name}: PyTorch module generated by `cnnspec emit torch` from {self.network.path}\n")
        out.write(f"# {self.network.describe_inputs()}, "
                  f"{self.network.params:,} parameters, {self.network.macs:,} MACs per sample\n\n")
        if self.uses_torch or "with_weights" in self.helpers:
            out.write("import torch\n")
        if self.uses_functional:
            out.write("import torch.nn.functional as F\n")
        out.write("from torch import nn\n")
        for helper in ("ChannelLayerNorm", "Reshape", "ChannelShuffle", "Chunk", "Mul", "ChannelsLast", "ChannelsFirst",
                       "center_crop"):
            if helper in self.helpers:
                out.write("\n\n" + helper_source(helper) + "\n")
        if "with_weights" in self.helpers:
            out.write("\n\n" + WITH_WEIGHTS.rstrip() + "\n")
        for cls in self.classes:
            out.write("\n\n" + render_class(cls))
        return out.getvalue()


WITH_WEIGHTS = '''
def with_weights(module, weights, frozen):
    """Load a spec's literal kernel (bias zero), and freeze the layer if asked."""
    if weights is not None:
        with torch.no_grad():
            module.weight.copy_(torch.tensor(weights).reshape(module.weight.shape))
            if module.bias is not None:
                module.bias.zero_()
    return module.requires_grad_(not frozen)
'''


def helper_source(name: str) -> str:
    """The source of a class or function of `torch_modules.py`, read as text: emitting code
    needs no torch."""
    path = Path(__file__).with_name("torch_modules.py")
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return ast.get_source_segment(text, node)
    raise KeyError(name)


def render_class(cls: ClassDef) -> str:
    lines = [f"class {cls.name}(nn.Module):", f'{INDENT}"""{cls.doc}"""', ""]
    lines.append(f"{INDENT}def __init__(self{''.join(', ' + p for p in cls.params)}):")
    lines.append(f"{INDENT * 2}super().__init__()")
    for line in cls.init:
        lines.append(INDENT * 2 + line.replace("\n", "\n" + INDENT * 2))
    lines += ["", f"{INDENT}def forward(self, {', '.join(cls.inputs)}):"]
    lines += [INDENT * 2 + line for line in cls.forward]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- templating

SLOT = "\x00{}\x00"


def template(code: str) -> tuple[str, list[int]]:
    """Replace every integer literal by a numbered slot; return the skeleton and the values.

    >>> template("nn.Conv2d(64, 128, kernel_size=3, eps=0.001)")
    ('nn.Conv2d(\\x000\\x00, \\x001\\x00, kernel_size=\\x002\\x00, eps=0.001)', [64, 128, 3])
    """
    values: list[int] = []
    pieces: list[str] = []
    lines = code.split("\n")
    position = (1, 0)
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    for token in tokens:
        if token.type == tokenize.NUMBER and token.string.isdigit():
            pieces.append(text_between(lines, position, token.start))
            pieces.append(SLOT.format(len(values)))
            values.append(int(token.string))
            position = token.end
    pieces.append(text_between(lines, position, (len(lines), len(lines[-1]))))
    return "".join(pieces), values


def text_between(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (row1, col1), (row2, col2) = start, end
    if row1 == row2:
        return lines[row1 - 1][col1:col2]
    parts = [lines[row1 - 1][col1:]] + lines[row1:row2 - 1] + [lines[row2 - 1][:col2]]
    return "\n".join(parts)


def fill(skeleton: str, slots: list[str]) -> str:
    return re.sub("\x00(\\d+)\x00", lambda m: slots[int(m.group(1))], skeleton)


def parameterise(instances: list[tuple[ScopeBody, list[int]]]) -> tuple[list[str], list[str], list[list[int]]]:
    """Constructor parameters for the numbers that differ between a class's instances.

    Returns the parameter names, the text for each slot, and each instance's arguments.
    A varying number is named after a block parameter with the same values (`c`), a
    multiple or fraction of one (`c * 4`), the scope's input channels (`in_channels`),
    or else `arg1`, `arg2`...
    """
    count = len(instances[0][1])
    columns = [tuple(values[i] for _, values in instances) for i in range(count)]
    taken = set(RESERVED)

    def fresh(wanted: str) -> str:
        # a parameter named `nn` or `torch` would hide the module the constructor calls
        name = unique_name(wanted, taken, "_")
        taken.add(name)
        return name

    candidates: dict[str, tuple] = {}
    for name, _ in instances[0][0].seq.args:
        column = tuple(dict(body.seq.args).get(name) for body, _ in instances)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in column):
            candidates[fresh(python_name(name))] = column
    in_channels = tuple(first_input_channels(body.seq) for body, _ in instances)
    channels_name = fresh("in_channels")
    used: list[str] = []
    extra: dict[tuple, str] = {}
    slots = []
    for column in columns:
        if len(set(column)) == 1:
            slots.append(str(column[0]))
            continue
        slots.append(name_column(column, candidates, (channels_name, in_channels), used, extra, fresh))
    params = [name for name in candidates if name in used]
    if channels_name in used:
        params.append(channels_name)
    params += list(extra.values())
    table = {**candidates, channels_name: in_channels, **{name: column for column, name in extra.items()}}
    arguments = [[table[p][i] for p in params] for i in range(len(instances))]
    return params, slots, arguments


def name_column(column, candidates, in_channels, used: list[str], extra: dict, fresh) -> str:
    for name, values in candidates.items():
        if values == column:
            used.append(name)
            return name
    for name, values in candidates.items():
        if all(v for v in values):
            ratios = {c / v for c, v in zip(column, values)}
            if len(ratios) == 1:
                ratio = ratios.pop()
                if ratio == int(ratio):
                    used.append(name)
                    return f"{name} * {int(ratio)}"
                if (1 / ratio) == int(1 / ratio) and all(v % int(1 / ratio) == 0 for v in values):
                    used.append(name)
                    return f"{name} // {int(1 / ratio)}"
    channels_name, channels = in_channels
    if column == channels:
        used.append(channels_name)
        return channels_name
    if column not in extra:
        extra[column] = fresh(f"arg{len(extra) + 1}")
    return extra[column]
