"""Vectors in and out: numpy arrays or sequences of numbers go in, float32
numpy arrays come out."""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Union

import numpy as np
import numpy.typing as npt

__all__ = ["VectorLike", "MatrixLike", "Vector", "as_vector", "as_matrix", "to_array"]

VectorLike = Union[Sequence[float], "npt.NDArray[Any]"]
"""One vector: a 1-D numpy array (any real dtype) or a sequence of numbers."""

MatrixLike = Union[Sequence[Sequence[float]], "npt.NDArray[Any]"]
"""Many vectors: a 2-D numpy array (one row per vector) or a sequence of vectors."""

Vector = "npt.NDArray[np.float32]"
"""A vector as the clients return it: a 1-D float32 array."""


def as_vector(vector: VectorLike, what: str = "vector") -> List[float]:
    """The components of ``vector`` as Python floats (float32-rounded, as
    stored). Raises ``ValueError`` unless it is one-dimensional and real."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D vector, got shape {array.shape}")
    components: List[float] = array.tolist()
    return components


def as_matrix(vectors: MatrixLike, what: str = "vectors") -> List[List[float]]:
    """The rows of ``vectors`` as lists of Python floats. Raises
    ``ValueError`` unless it is two-dimensional (one row per vector)."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (one row per vector), got shape {array.shape}")
    rows: List[List[float]] = array.tolist()
    return rows


def to_array(components: Iterable[float]) -> "npt.NDArray[np.float32]":
    """A float32 numpy array of ``components`` (a protobuf repeated field or a list)."""
    return np.asarray(list(components), dtype=np.float32)
