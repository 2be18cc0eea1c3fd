"""Unique names for generated code and graphs."""

from __future__ import annotations

from typing import Container


def unique_name(wanted: str, taken: Container[str], separator: str = "") -> str:
    """`wanted`, or `wanted2`, `wanted3`... (with `separator` before the number): the first not taken.

    >>> unique_name("relu", {"relu", "relu2"}), unique_name("conv1", {"conv1"}, "_")
    ('relu3', 'conv1_2')
    """
    name, number = wanted, 2
    while name in taken:
        name, number = f"{wanted}{separator}{number}", number + 1
    return name
