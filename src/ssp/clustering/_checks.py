"""Input checks the clustering models share: points as a finite ``(n, d)`` array, and short previews of bad
input for the error messages.

>>> finite_points([[1, 2], [3, 4]], 2).shape
(2, 2)
>>> finite_points([[1.0, float("nan")]], None)
Traceback (most recent call last):
...
ValueError: points must be finite numbers; point 0, coordinate 1 is nan
"""

from __future__ import annotations

from typing import Any

import numpy as np


def finite_points(value: Any, dim: int | None, *, name: str = "points") -> np.ndarray:
    """``value`` as a finite float64 ``(n, d)`` array (an empty list is no points), or a clear ValueError."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers, got {preview(value)} ({err})") from None
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, dim or 0)
    elif array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (one row a point), got shape {array.shape}")
    if len(array) and array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one coordinate")
    if dim is not None and len(array) and array.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} coordinates, got {array.shape[1]}")
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{name} must be finite numbers; point {row}, coordinate {column} is {array[row, column]}")
    return array


def preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
