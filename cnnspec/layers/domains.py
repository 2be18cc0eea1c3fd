"""The values a layer kind's options take in the tests' random specs, declared beside the kind.

A domain describes some legal values of one option, which may depend on the input shape and on
the options drawn before it (a `Where`). It names no random-number library: the test generator
(`tests/strategies.py`) turns each into a Hypothesis strategy, so a new kind, or a new option of
an old one, is fuzzed and differential-tested as soon as it declares its range. The checker
never reads them.

An option without a default is always written; another is written with probability `chance`,
and only `when` its condition holds (an option that would make the layer invalid is left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Where:
    """What a domain may depend on: the layer's input shape and the options drawn so far."""

    shape: Shape
    fields: dict[str, Any]

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def rank(self) -> int:
        """Spatial dimensions (0 for a flat vector)."""
        return len(self.shape) - 1

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


Bound = Union[int, Callable[[Where], int]]


def bound(value: Bound, where: Where) -> int:
    return value(where) if callable(value) else value


@dataclass(frozen=True, kw_only=True)
class Domain:
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None

    def applies(self, where: Where) -> bool:
        return self.when is None or self.when(where)


@dataclass(frozen=True)
class Choice(Domain):
    """One of the values (or of those a function of the `Where` gives)."""

    values: tuple | Callable[[Where], tuple]

    def options(self, where: Where) -> tuple:
        return tuple(self.values(where)) if callable(self.values) else self.values


@dataclass(frozen=True)
class Ints(Domain):
    """A multiple of `times` from `low * times` to `high * times`."""

    low: Bound
    high: Bound
    times: Bound = 1


@dataclass(frozen=True)
class Divisors(Domain):
    """A divisor of the input's channel count."""


@dataclass(frozen=True)
class PerDim(Domain):
    """One value for every spatial dimension, or one per dimension."""

    each: Domain


@dataclass(frozen=True)
class Pairs(Domain):
    """A (begin, end) pair per spatial dimension."""

    each: Domain


@dataclass(frozen=True)
class OneOf(Domain):
    """A value of one of the domains."""

    domains: tuple[Domain, ...]


@dataclass(frozen=True)
class Nested(Domain):
    """Nested lists of values, of the shape a function of the `Where` gives (a literal kernel)."""

    each: Domain
    shape: Callable[[Where], Shape]


def values(*choices, **options) -> Choice:
    return Choice(tuple(choices), **options)


BOOL = values(False, True)
EPS = values(1e-5, 1e-3, 0.01)
