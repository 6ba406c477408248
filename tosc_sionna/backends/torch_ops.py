"""Channel tensor operations on PyTorch, for Sionna 2.x (see the package docstring).

Keras' torch backend runs eagerly, so every tensor is concrete: SNR checks
happen in Python, and there is no trace to keep Sionna objects out of.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sionna.phy import config as sionna_config

NAME = "torch"
Tensor = torch.Tensor

_DTYPES = {
    "float32": torch.float32, "float64": torch.float64,
    "complex64": torch.complex64, "complex128": torch.complex128,
    "int32": torch.int32, "int64": torch.int64,
}


def _dtype(dtype: Any) -> torch.dtype:
    return _DTYPES[dtype] if isinstance(dtype, str) else dtype


def sionna_dtypes() -> tuple[torch.dtype, torch.dtype]:
    """The (real, complex) dtypes of ``sionna.phy.config.precision``."""
    return sionna_config.dtype, sionna_config.cdtype


def seed_sionna(seed: int) -> None:
    """Seed Sionna's generators (this also reseeds torch's global generators)."""
    sionna_config.seed = int(seed)


def prepare() -> None:
    """Nothing to prepare: Sionna 2 creates its generators with its config."""


def outside_trace() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@contextlib.contextmanager
def sionna_rng_seeded(seed: int) -> Iterator[None]:
    """Draw from Sionna's generator reseeded with ``seed``, then restore its state."""
    rng = sionna_config.torch_rng(sionna_config.device)
    saved = rng.get_state()
    rng.manual_seed(int(seed))
    try:
        yield
    finally:
        rng.set_state(saved)


def is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def static_value(x: Any) -> np.ndarray:
    """Every torch tensor is concrete: its value."""
    return x.detach().cpu().numpy()


def to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def constant(value: Any, dtype: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value), dtype=_dtype(dtype), device=sionna_config.device)


def cast(x: Any, dtype: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        return torch.as_tensor(x, dtype=_dtype(dtype), device=sionna_config.device)
    return x.to(_dtype(dtype))


def batch_size(x: torch.Tensor) -> int:
    return int(x.shape[0])


def shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def real_to_complex(x: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """``[batch, 2n]`` float, (Re, Im) interleaved -> ``[batch, n]`` complex ``dtype``."""
    dtype = _dtype(dtype)
    real_dtype = torch.float64 if dtype == torch.complex128 else torch.float32
    x = x.to(real_dtype)
    return torch.complex(x[:, 0::2], x[:, 1::2])


def complex_to_real(z: torch.Tensor) -> torch.Tensor:
    """``[batch, n]`` complex -> ``[batch, 2n]`` float32, (Re, Im) interleaved."""
    return torch.view_as_real(z).reshape(z.shape[0], 2 * z.shape[-1]).to(torch.float32)


def real(z: torch.Tensor) -> torch.Tensor:
    return torch.real(z)


def conj(z: torch.Tensor) -> torch.Tensor:
    return torch.conj(z)


def as_complex(r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A real tensor as complex with ``like``'s dtype (zero imaginary part)."""
    return r.to(like.dtype)


def gather(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``x[:, indices]``."""
    return torch.index_select(x, 1, indices.to(torch.int64))


def pad_zero_column(x: torch.Tensor) -> torch.Tensor:
    """Append one column of zeros: ``[batch, n]`` -> ``[batch, n + 1]``."""
    return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Append zero rows up to ``rows``: ``[batch, ...]`` -> ``[rows, ...]`` (rows >= batch)."""
    extra = rows - x.shape[0]
    if extra == 0:
        return x
    return torch.cat([x, torch.zeros((extra, *x.shape[1:]), dtype=x.dtype, device=x.device)])


def reshape(x: torch.Tensor, shape: Any) -> torch.Tensor:
    return torch.reshape(x, [int(s) for s in shape])


def tile(x: torch.Tensor, multiples: Any) -> torch.Tensor:
    return x.repeat(*[int(m) for m in multiples])


def broadcast_to(x: torch.Tensor, shape: Any) -> torch.Tensor:
    return torch.broadcast_to(x, tuple(int(s) for s in shape))


def ones(shape: Any, dtype: Any) -> torch.Tensor:
    return torch.ones([int(s) for s in shape], dtype=_dtype(dtype), device=sionna_config.device)


def zeros_like(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def mean(x: torch.Tensor, axis: int, keepdims: bool = False) -> torch.Tensor:
    return torch.mean(x, dim=axis, keepdim=keepdims)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.matmul(a, b)


def maximum(x: torch.Tensor, floor: float) -> torch.Tensor:
    return torch.clamp(x, min=floor)


def minimum(x: torch.Tensor, cap: float) -> torch.Tensor:
    return torch.clamp(x, max=cap)


def assert_in_range(x: torch.Tensor, low: float, high: float, message: str) -> None:
    """Never reached: torch tensors are concrete and checked in Python."""
