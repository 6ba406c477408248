"""The augmentation, defined once (NumPy only) and replayed bit-identically.

A view of a sample is keyed by one stored 64-bit seed. View 0 is always the
unaugmented image; view ``v >= 1`` is a random crop with zero padding plus a
random horizontal flip drawn from ``numpy.random.default_rng(seed)``. The
teacher side computes the views it feeds the teacher with this code, and the
student side replays the very same views from the seeds in the cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The augmentation's parameters; stored in the cache as provenance.
DEFAULT_AUGMENTATION = {"name": "crop_flip", "pad": 2, "flip": True}


def view_seeds(base_seed: int, sample_indices: np.ndarray, num_views: int) -> np.ndarray:
    """``[N, V]`` uint64 seeds; column 0 is 0 (the unaugmented view).

    Seeds depend on (base_seed, dataset index, view) only, so a subset or a
    resumed run draws the same views.
    """
    sample_indices = np.asarray(sample_indices, dtype=np.int64)
    seeds = np.zeros((len(sample_indices), num_views), dtype=np.uint64)
    for view in range(1, num_views):
        for row, index in enumerate(sample_indices):
            seeds[row, view] = np.random.SeedSequence(
                [int(base_seed), int(index), view]
            ).generate_state(1, dtype=np.uint64)[0]
    return seeds


def check_augmentation(config: dict[str, Any]) -> dict[str, Any]:
    """Validate an augmentation description and return it normalized."""
    if config.get("name") != "crop_flip":
        raise ValueError(f"Unknown augmentation {config.get('name')!r}; only 'crop_flip'.")
    pad = int(config.get("pad", 2))
    if pad < 0:
        raise ValueError(f"Augmentation pad must be >= 0; got {pad}.")
    return {"name": "crop_flip", "pad": pad, "flip": bool(config.get("flip", True))}


def augment(
    image: np.ndarray, seed: int, config: dict[str, Any] = DEFAULT_AUGMENTATION
) -> np.ndarray:
    """One view of ``image`` (``[H, W]`` or ``[H, W, C]``); seed 0 returns it unchanged."""
    if int(seed) == 0:
        return image
    config = check_augmentation(config)
    pad = config["pad"]
    rng = np.random.default_rng(int(seed))
    dy, dx = rng.integers(0, 2 * pad + 1, size=2)
    flip = bool(rng.integers(0, 2)) and config["flip"]
    height, width = image.shape[:2]
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (image.ndim - 2)
    out = np.pad(image, widths)[dy : dy + height, dx : dx + width]
    return out[:, ::-1].copy() if flip else out.copy()


def augment_batch(
    images: np.ndarray, seeds: np.ndarray, config: dict[str, Any] = DEFAULT_AUGMENTATION
) -> np.ndarray:
    """Views of a batch: ``images[i]`` with ``seeds[i]``."""
    return np.stack([augment(img, seed, config) for img, seed in zip(images, seeds, strict=True)])
