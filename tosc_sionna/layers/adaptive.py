"""Channel-adaptive module: condition features on the channel state."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from ..checks import check_bool, check_int
from ..snr import check_snr_db

# SNRs enter the MLP scaled to about unit range.
_SNR_SCALE_DB = 20.0
# Effective noise variances enter as log10, floored here.
_NOISE_FLOOR = 1e-10


@keras.saving.register_keras_serializable(package="tosc_sionna")
class ChannelAdaptiveModule(keras.layers.Layer):
    r"""Scale features by channel-state-dependent attention weights.

    After the attention-feature module of ADJSCC (Xu et al., 2021): the
    features are pooled (global average over spatial axes for feature maps;
    the vector itself for ``[batch, d]``), concatenated with the SNR (dB / 20)
    and, at the receiver, the equalizer's per-symbol effective noise
    (``log10``), passed through a small MLP (ReLU, then sigmoid) and used to
    scale the features channel-wise. One model thereby adapts what it sends
    and how it reads it to every SNR.

    Parameters
    ----------
    hidden_units : int, (default 64)
        Width of the MLP's hidden layer.
    use_noise : bool, (default False)
        Also condition on the effective noise variance (receiver side).

    Input
    -----
    features : [batch, d] or [batch, height, width, d], float
    snr_db : scalar or [batch], float
        SNR in dB, within [-30, 60].
    noise : [batch, n], float
        Effective noise variance per received symbol; required iff
        ``use_noise=True``.

    Output
    ------
    : same shape as ``features``
        The scaled features.
    """

    def __init__(self, hidden_units: int = 64, use_noise: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_units = check_int("hidden_units", hidden_units, 1)
        self.use_noise = check_bool("use_noise", use_noise)
        self.hidden = layers.Dense(self.hidden_units, activation="relu")
        self.scales = None

    def __call__(self, features: Any, snr_db: Any, noise: Any = None, **kwargs: Any) -> Any:
        # Keras takes only tensors as positional inputs: convert Python/NumPy SNRs.
        if not (ops.is_tensor(snr_db) or isinstance(snr_db, keras.KerasTensor)):
            check_snr_db(snr_db)
            snr_db = ops.convert_to_tensor(snr_db, dtype="float32")
        if self.use_noise and noise is None:
            raise ValueError("This ChannelAdaptiveModule has use_noise=True: pass noise.")
        if not self.use_noise and noise is not None:
            raise ValueError("Pass noise only to a ChannelAdaptiveModule with use_noise=True.")
        if noise is None:
            return super().__call__(features, snr_db, **kwargs)
        return super().__call__(features, snr_db, noise, **kwargs)

    def build(self, features_shape: Any, snr_db_shape: Any = None, noise_shape: Any = None) -> None:
        features_shape = tuple(features_shape)
        if len(features_shape) not in (2, 4):
            raise ValueError(
                "features must be [batch, d] or [batch, height, width, d]; "
                f"got shape {features_shape}."
            )
        num_inputs = features_shape[-1] + 1
        if self.use_noise:
            if noise_shape is None or len(tuple(noise_shape)) != 2:
                raise ValueError(f"noise must be [batch, n]; got shape {noise_shape}.")
            num_inputs += tuple(noise_shape)[-1]
        self.hidden.build((None, num_inputs))
        self.scales = layers.Dense(features_shape[-1], activation="sigmoid")
        self.scales.build((None, self.hidden_units))
        self.built = True

    def call(self, features: Any, snr_db: Any, noise: Any = None) -> Any:
        batch = ops.shape(features)[0]
        spatial = len(features.shape) == 4
        # The channel state is computed in float32 whatever the policy: under
        # float16 the noise floor (1e-10) underflows to 0 and its log to -inf.
        x32 = ops.cast(features, "float32")
        pooled = ops.mean(x32, axis=(1, 2)) if spatial else x32
        snr = ops.broadcast_to(ops.cast(snr_db, "float32"), (batch,))
        state = [pooled, ops.expand_dims(snr / _SNR_SCALE_DB, -1)]
        if self.use_noise:
            noise = ops.cast(noise, "float32")
            state.append(ops.log10(ops.maximum(noise, _NOISE_FLOOR)))
        state = ops.cast(ops.concatenate(state, axis=-1), self.compute_dtype)
        scales = self.scales(self.hidden(state))
        if spatial:
            scales = scales[:, None, None, :]
        return features * scales

    def compute_output_shape(self, features_shape: Any, *args: Any, **kwargs: Any) -> Any:
        return tuple(features_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "use_noise": self.use_noise,
        }
