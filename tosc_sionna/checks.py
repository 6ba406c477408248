"""Constructor argument checks shared by the layers (plain Python, no backend).

Each returns the value in its canonical type or raises a one-line
``ValueError`` naming the argument, what it accepts and what it got: a
``2.5`` pilots, a ``"no"`` flag or a negative speed never becomes a number
the layer silently runs with.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_bool(name: str, value: Any) -> bool:
    """``True``/``False`` only (NumPy bools too): ``"no"`` or ``0`` is refused."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {value!r}.")


def check_int(name: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """A whole number (``2.0`` is accepted, ``2.5`` and ``True`` are not) within bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and int(value) == value
    ):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f">= {minimum}" if maximum is None else
                  f"<= {maximum}" if minimum is None else f"in [{minimum}, {maximum}]")
        raise ValueError(f"{name} must be an integer {bounds}; got {value}.")
    return value


def check_real(name: str, value: Any, low: float | None = None, high: float | None = None,
               low_open: bool = False, unit: str = "") -> float:
    """A finite real within ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    unit = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
        value
    ):
        raise ValueError(f"{name} must be a finite number{unit}; got {value!r}.")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bounds = f"> {lo}" if high is None and low_open else (
            f">= {lo}" if high is None else f"in {left}{lo}, {hi}]")
        raise ValueError(f"{name} must be {bounds}{unit}; got {value:g}.")
    return value
