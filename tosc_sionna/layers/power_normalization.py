"""Per-example power normalization of the channel input."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ..checks import check_real
from ..shapes import check_symbol_shape


@keras.saving.register_keras_serializable(package="tosc_sionna")
class PowerNormalization(keras.layers.Layer):
    r"""Scale each example to unit average power per complex symbol.

    ``y = x * sqrt(n / sum(x**2))`` for ``x`` of shape ``[batch, 2n]``, so that
    ``(1/n) * sum_k |y_k|^2 = 1`` for every example: the transmit power
    constraint under which the channel layers define SNR.

    Parameters
    ----------
    epsilon : float, (default 1e-24)
        Floor on the power before the division (an all-zero input stays zero);
        a floor rather than an added term, so tiny inputs still come out at
        unit power. Norms are computed in float32 under any dtype policy.

    Input
    -----
    x : [batch, 2n], float
        Symbols, (Re, Im) interleaved.

    Output
    ------
    y : [batch, 2n], float
        Normalized symbols.
    """

    def __init__(self, epsilon: float = 1e-24, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = check_real("epsilon", epsilon, 0.0, low_open=True)

    def build(self, input_shape: Any) -> None:
        check_symbol_shape(input_shape)
        self.built = True

    def call(self, x: Any) -> Any:
        # float32 whatever the policy: under float16 a small epsilon underflows to 0
        # and squares above 65504 overflow; the unit-power result fits float16.
        x32 = ops.cast(x, "float32")
        # mean of x**2 over 2n reals is half the power per complex symbol
        power = 2.0 * ops.mean(ops.square(x32), axis=-1, keepdims=True)
        return ops.cast(x32 * ops.rsqrt(ops.maximum(power, self.epsilon)), self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}
