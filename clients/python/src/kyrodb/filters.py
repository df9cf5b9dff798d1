"""Payload filters for search, count, scroll and delete.

Build them with the functions here::

    from kyrodb import filters as f
    f.all_of(f.eq("tool", "cargo"), f.in_range("exit_code", gte=1))

or pass a plain mapping wherever a filter goes: ``{"tool": "cargo"}`` means
the field equals the value, ``{"tool": ["npm", "pip"]}`` that it equals one
of them; several keys must all match. A raw ``kyrodb.pb.Filter`` works too.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Union

from ._proto.kyro.v1 import kyro_pb2 as pb
from .payload import to_scalar

__all__ = [
    "Filter",
    "FilterLike",
    "eq",
    "is_in",
    "in_range",
    "exists",
    "all_of",
    "any_of",
    "negate",
    "as_filter",
]

Filter = pb.Filter
"""A filter message (``kyro.v1.Filter``)."""

FilterLike = Union[pb.Filter, Mapping[str, Any]]
"""A filter, or a mapping read as every key equals (or is one of) its value."""


def eq(key: str, value: Any) -> pb.Filter:
    """The field equals ``value`` (a string list field: contains it)."""
    return pb.Filter(eq=pb.FieldEquals(key=key, value=to_scalar(value, key)))


def is_in(key: str, values: Iterable[Any]) -> pb.Filter:
    """The field equals one of ``values``."""
    return pb.Filter(is_in=pb.FieldIn(key=key, values=[to_scalar(v, key) for v in values]))


def in_range(
    key: str,
    *,
    gt: Optional[Any] = None,
    gte: Optional[Any] = None,
    lt: Optional[Any] = None,
    lte: Optional[Any] = None,
) -> pb.Filter:
    """The field lies within the given bounds (numbers, or strings compared
    lexicographically); at least one bound is needed."""
    bounds = {name: to_scalar(v, key) for name, v in
              (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)) if v is not None}
    if not bounds:
        raise ValueError(f"{key}: in_range needs at least one of gt, gte, lt, lte")
    return pb.Filter(range=pb.FieldRange(key=key, **bounds))


def exists(key: str) -> pb.Filter:
    """The payload has the field."""
    return pb.Filter(exists=pb.FieldExists(key=key))


def all_of(*filters: FilterLike) -> pb.Filter:
    """Every filter holds."""
    return pb.Filter(all_of=pb.FilterList(conditions=[_require(f) for f in filters]))


def any_of(*filters: FilterLike) -> pb.Filter:
    """At least one filter holds."""
    return pb.Filter(any_of=pb.FilterList(conditions=[_require(f) for f in filters]))


def negate(condition: FilterLike) -> pb.Filter:
    """The filter does not hold."""
    return pb.Filter(negate=_require(condition))


def _from_mapping(conditions: Mapping[str, Any]) -> pb.Filter:
    parts = [
        is_in(key, value) if isinstance(value, (list, tuple, set, frozenset)) else eq(key, value)
        for key, value in conditions.items()
    ]
    if not parts:
        raise ValueError("an empty mapping is not a filter")
    return parts[0] if len(parts) == 1 else all_of(*parts)


def _require(condition: FilterLike) -> pb.Filter:
    if isinstance(condition, pb.Filter):
        return condition
    if isinstance(condition, Mapping):
        return _from_mapping(condition)
    raise TypeError(f"not a filter: {condition!r}")


def as_filter(condition: Optional[FilterLike]) -> Optional[pb.Filter]:
    """The filter message for ``condition`` (``None`` stays ``None``)."""
    return None if condition is None else _require(condition)
