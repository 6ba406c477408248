import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
from backend import BACKEND, numpy  # noqa: E402

#: markers of the tests that exercise one Sionna line only
LINE_MARKERS = ("tensorflow", "torch")


def pytest_collection_modifyitems(config, items):
    """Deselect the other line's tests (CI runs both lines, so each runs somewhere)."""
    other = [m for m in LINE_MARKERS if m != BACKEND]
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(m) for m in other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same seed: results are reproducible."""
    ts.set_seed(1234)
    yield


def unit_symbols(batch: int, n: int, seed: int = 0) -> np.ndarray:
    """``[batch, 2n]`` reals of unit-modulus complex symbols (random phases)."""
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(batch, n))
    return np.stack([np.cos(phase), np.sin(phase)], axis=-1).reshape(batch, 2 * n).astype(
        np.float32
    )


def to_complex(x) -> np.ndarray:
    x = numpy(x)
    return x[:, 0::2] + 1j * x[:, 1::2]


class SliceRecorder:
    """Images that can only be read in slices, recording each slice's length: a stand-in
    for a split decoded on every read (a Hugging Face dataset's)."""

    def __init__(self, pixels):
        self.pixels, self.reads = pixels, []

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("read in slices only")
        self.reads.append(len(self.pixels[index]))
        return self.pixels[index]


def assert_batches_equal(a, b) -> None:
    """Two reader batches' targets (dicts of arrays, or label arrays) are equal."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    else:
        np.testing.assert_array_equal(a, b)
