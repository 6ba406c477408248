"""Dataset pixels -> student inputs, and lazily decoded images decoded once."""

import numpy as np
import pytest
from conftest import SliceRecorder

from tosc_sionna.data import decoded_pixels, student_inputs


def test_student_inputs():
    pixels = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # [1, 2, 2] grey
    x = student_inputs(pixels)
    assert x.dtype == np.float32 and x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x[0, :, :, 0], [[0.0, 1.0], [0.2, 0.4]], rtol=1e-6)
    rgb = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)  # colour: no new axis
    np.testing.assert_allclose(student_inputs(rgb), rgb / 255.0, rtol=1e-6)
    assert student_inputs(rgb).shape == (2, 3, 3, 3)
    colour = np.full((2, 3, 3, 3), 0.5, dtype=np.float64)  # floats: already scaled
    x = student_inputs(colour)
    assert x.dtype == np.float32 and x.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(x, 0.5)
    for bad in (pixels.astype(np.int64), pixels > 0):
        with pytest.raises(TypeError, match="uint8 pixels"):
            student_inputs(bad)


def test_lazily_decoded_images_are_decoded_once():
    pixels = np.random.default_rng(0).integers(0, 256, (2500, 4, 5, 3), dtype=np.uint8)
    lazy = SliceRecorder(pixels)
    out = decoded_pixels(lazy, block=1000)
    assert isinstance(out, np.memmap) and out.dtype == np.uint8 and out.shape == pixels.shape
    np.testing.assert_array_equal(out, pixels)
    assert sum(lazy.reads) == 2500 + 1  # every image once, and the first to learn the shape
    out[:10].sum()  # reading again decodes nothing
    assert sum(lazy.reads) == 2501
    assert decoded_pixels(pixels) is pixels  # arrays and memory maps as they are
