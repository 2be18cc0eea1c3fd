"""One kind of table for everything cnnspec registers by name: the layer kinds, their PyTorch and
ONNX lowerings, the lint rules. Each is filled by a decorator at import and refuses a name taken
twice, so two definitions of one thing fail at once instead of the later silently winning.
"""

from __future__ import annotations

from typing import Callable, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Registry(dict[K, V]):
    """A dict that refuses a key registered twice. `what` names an entry in that error, with `{}`
    where the key goes: `Registry("ONNX lowering for `{}`")`.

    >>> table = Registry("rule `{}`")
    >>> table.add("a", 1)
    >>> table.add("a", 2)
    Traceback (most recent call last):
    ...
    ValueError: rule `a` registered twice
    """

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def add(self, key: K, value: V) -> None:
        if key in self:
            raise ValueError(f"{self.what.format(key)} registered twice")
        self[key] = value

    def registers(self, *keys: K) -> Callable[[V], V]:
        """A decorator registering what it decorates under each of `keys`, and returning it unchanged."""
        def decorate(value: V) -> V:
            for key in keys:
                self.add(key, value)
            return value
        return decorate
