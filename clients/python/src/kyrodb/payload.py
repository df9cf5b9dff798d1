"""Payloads: plain Python values in, plain Python values out.

A payload is a mapping from key to one of ``str``, ``int``, ``float``,
``bool`` or a list of ``str`` (numpy scalars are accepted too). The server's
limits (64 fields, keys of ``[A-Za-z0-9_.-]``, strings of 4096 bytes…) are
checked by the server, which answers ``InvalidArgument`` naming the field.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from ._proto.kyro.v1 import kyro_pb2 as pb

__all__ = [
    "PayloadValue",
    "ScalarValue",
    "Payload",
    "to_value",
    "to_payload",
    "from_value",
    "from_payload",
    "to_scalar",
]

ScalarValue = Union[str, int, float, bool]
"""A value a filter compares with."""

PayloadValue = Union[str, int, float, bool, List[str]]
"""One payload field's value."""

Payload = Mapping[str, Any]
"""A payload as given to the clients: key → :data:`PayloadValue`."""


def _scalar_kind(key: str, value: Any) -> tuple[str, Any]:
    # bool before int: bool is an int subclass.
    if isinstance(value, (bool, np.bool_)):
        return "bool_value", bool(value)
    if isinstance(value, str):
        return "string_value", value
    if isinstance(value, Integral):
        return "integer_value", int(value)
    if isinstance(value, Real):
        return "float_value", float(value)
    raise TypeError(f"{key}: unsupported value {value!r} ({type(value).__name__}); "
                    "expected str, int, float or bool")


def to_value(key: str, value: Any) -> pb.Value:
    """The protobuf ``Value`` of one payload field."""
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not all(isinstance(item, str) for item in items):
            raise TypeError(f"{key}: a list value must hold strings only")
        return pb.Value(string_list_value=pb.StringList(values=items))
    kind, converted = _scalar_kind(key, value)
    return pb.Value(**{kind: converted})


def to_payload(payload: Optional[Payload]) -> Dict[str, pb.Value]:
    """The protobuf map of a payload (``None``: empty)."""
    if not payload:
        return {}
    return {key: to_value(key, value) for key, value in payload.items()}


def to_scalar(value: Any, key: str = "value") -> pb.Scalar:
    """The protobuf ``Scalar`` a filter compares with."""
    kind, converted = _scalar_kind(key, value)
    return pb.Scalar(**{kind: converted})


def from_value(value: pb.Value) -> Optional[PayloadValue]:
    """The Python value of a protobuf ``Value`` (``None`` when unset)."""
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    result: PayloadValue = getattr(value, kind)
    return result


def from_payload(payload: Mapping[str, pb.Value]) -> Dict[str, Any]:
    """The Python dict of a protobuf payload map."""
    return {key: from_value(value) for key, value in payload.items()}


