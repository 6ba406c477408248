"""Write the cross-line fixtures: a trained-looking link saved by this environment's line.

Run once per Sionna line (``python tests/data/make_cross_line_links.py``): writes
``link_<backend>.keras`` and ``link_<backend>_io.npz`` (inputs and the link's outputs
for them) next to this file. ``tests/test_sionna_lines_io.py`` loads both lines' files on
whichever line runs it.
"""

from pathlib import Path

import numpy as np

import tosc_sionna as ts  # first: sets Keras' backend from the installed Sionna

# isort: split
import keras

HERE = Path(__file__).resolve().parent


def main() -> None:
    backend = keras.backend.backend()
    ts.set_seed(7)
    link = ts.make_link(ts.RayleighBlockFadingChannel(csi="ls", return_noise=True))
    rng = np.random.default_rng(7)
    images = rng.random((6, 28, 28, 1)).astype(np.float32)
    snr = np.linspace(-5.0, 20.0, 6).astype(np.float32)
    link(images, snr_db=snr)
    # move every weight off its initial value, so that a load that drops one is seen
    for w in link.weights:
        w.assign(keras.ops.convert_to_numpy(w) + rng.normal(0, 0.05, tuple(w.shape)))
    symbols = keras.ops.convert_to_numpy(link.transmit(images, snr, training=False))
    noise = np.full((6, symbols.shape[1] // 2), 0.3, np.float32)
    logits = keras.ops.convert_to_numpy(link.receive(symbols, snr, noise, training=False))
    link.save(HERE / f"link_{backend}.keras")
    np.savez(HERE / f"link_{backend}_io.npz", images=images, snr=snr, symbols=symbols,
             noise=noise, logits=logits)


if __name__ == "__main__":
    main()
