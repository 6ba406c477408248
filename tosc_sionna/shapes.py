"""Shape checks shared by the layers (plain Python, no backend)."""

from __future__ import annotations

from typing import Any


def check_symbol_shape(shape: Any, name: str = "x") -> int:
    """Validate a ``[batch, 2n]`` symbol tensor shape and return ``n``."""
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(
            f"{name} must have rank 2, [batch, 2n] real values (Re, Im interleaved); "
            f"got shape {shape}. Flatten features before the channel."
        )
    if shape[-1] is None:
        raise ValueError(f"{name} needs a known last dimension 2n; got shape {shape}.")
    if shape[-1] % 2:
        raise ValueError(
            f"The last dimension of {name} must be even (2n reals = n complex symbols); "
            f"got {shape[-1]}."
        )
    return shape[-1] // 2
