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

from typing import Any, Callable, NamedTuple, Union

Shape = tuple[int, ...]


class Where(NamedTuple):
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


# Each domain is a named tuple, ending in the `chance` and `when` every domain has: every layer
# module imports these classes, and a named tuple's class is made in a seventh of a frozen
# dataclass's time.


def applies(domain: Domain, where: Where) -> bool:
    """Whether the option is written at all `where` (its domain's `when` holds)."""
    return domain.when is None or domain.when(where)


class Choice(NamedTuple):
    """One of the values (or of those a function of the `Where` gives)."""

    values: tuple | Callable[[Where], tuple]
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies

    def options(self, where: Where) -> tuple:
        return tuple(self.values(where)) if callable(self.values) else self.values


class Ints(NamedTuple):
    """A multiple of `times` from `low * times` to `high * times`."""

    low: Bound
    high: Bound
    times: Bound = 1
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


class Divisors(NamedTuple):
    """A divisor of the input's channel count."""

    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


class PerDim(NamedTuple):
    """One value for every spatial dimension, or one per dimension."""

    each: Domain
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


class Pairs(NamedTuple):
    """A (begin, end) pair per spatial dimension."""

    each: Domain
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


class OneOf(NamedTuple):
    """A value of one of the domains."""

    domains: tuple[Domain, ...]
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


class Nested(NamedTuple):
    """Nested lists of values, of the shape a function of the `Where` gives (a literal kernel)."""

    each: Domain
    shape: Callable[[Where], Shape]
    chance: float = 0.5
    when: Callable[[Where], bool] | None = None
    applies = applies


Domain = Union[Choice, Ints, Divisors, PerDim, Pairs, OneOf, Nested]


def values(*choices, **options) -> Choice:
    return Choice(tuple(choices), **options)


BOOL = values(False, True)
EPS = values(1e-5, 1e-3, 0.01)
