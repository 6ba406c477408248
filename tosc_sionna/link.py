"""The end-to-end task-oriented link: encoder -> channel -> decoder."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .layers import ChannelAdaptiveModule, PowerNormalization, SemanticDecoder, SemanticEncoder
from .losses import feature_distance, gaussian_rate
from .snr import check_snr_db, check_snr_range


@keras.saving.register_keras_serializable(package="tosc_sionna")
class TaskOrientedLink(keras.Model):
    r"""Semantic encoder -> CAM -> power normalization -> channel -> CAM -> decoder.

    In training (``training=True`` and no ``snr_db`` given) an SNR is drawn
    per example, uniformly in ``snr_train_db``; otherwise the link runs at
    ``snr_db`` if given, else at its evaluation SNR (``set_eval_snr``), a
    non-trainable variable so compiled ``evaluate``/``predict`` functions see
    changes. The transmitter's channel-adaptive module sees the SNR; the
    receiver's also sees the equalizer's effective noise when the channel
    layer was built with ``return_noise=True``.

    Parameters
    ----------
    encoder : SemanticEncoder (or any layer mapping inputs to [batch, 2n])
    channel : a channel layer (:class:`~tosc_sionna.AWGNChannel`, ...)
    decoder : SemanticDecoder (or any layer mapping [batch, 2n] to logits)
    tx_cam, rx_cam : ChannelAdaptiveModule or None
        Default: new modules (the receiver's with ``use_noise`` equal to the
        channel's ``return_noise``).
    snr_train_db : (float, float), (default (-5.0, 20.0))
        Range of the per-example training SNR, dB.
    snr_eval_db : float, (default 10.0)
        SNR used at inference when none is passed, dB.
    seed : int or None, (default None)
        Seed of the training-SNR draws.
    rate_weight : float, (default 0.0)
        beta of the information-bottleneck loss: with a stochastic encoder,
        ``beta * rate`` is added to the training loss, where ``rate`` is
        :func:`~tosc_sionna.losses.gaussian_rate`, the scale-free upper bound
        on I(X;U) of the encoder's latent U (before the channel-adaptive
        module and power normalization), in nats per example over its 2n
        real dimensions. ``rate`` is reported as a metric in ``fit`` and
        ``evaluate`` (each time the stochastic encoder runs); the loss is
        added only in training and only for ``rate_weight > 0``.
    feature_dim : int, (default 0)
        D > 0 adds feature distillation: a training-only projection
        ``feature_head`` (Dense, ``decoder.embedding_dim -> D``) of the
        decoder's last hidden layer is matched to the teacher's pooled
        features of the same view, fed as ``x = (images, features)``
        (:class:`~tosc_sionna.data.TeacherCacheDataset` with
        ``features=True``). The head is not part of the transmitter or the
        receiver: it never runs at inference.
    feature_weight : float, (default 1.0)
        gamma: ``gamma * mean(1 - cos(feature_head(h), f_T))``
        (:func:`~tosc_sionna.losses.feature_distance`) is added to the
        training loss when features are given. The mean distance is the
        ``feature`` metric, measured whenever features are given (``fit``,
        and ``evaluate`` on ``(x, features)``; it reads 0 where none were).

    Input
    -----
    x : [batch, ...], float, or (x, teacher_features [batch, D])
        Encoder inputs (images in [0, 1]); with ``feature_dim`` > 0 also
        the teacher's features of these inputs (the feature term in
        training, the ``feature`` metric in evaluation; not needed to infer).
    snr_db : None, scalar or [batch], float
        Optional SNR in dB.

    Output
    ------
    logits : [batch, num_classes], float
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        channel: keras.layers.Layer,
        decoder: keras.layers.Layer,
        tx_cam: ChannelAdaptiveModule | None = None,
        rx_cam: ChannelAdaptiveModule | None = None,
        snr_train_db: tuple[float, float] = (-5.0, 20.0),
        snr_eval_db: float = 10.0,
        seed: int | None = None,
        rate_weight: float = 0.0,
        feature_dim: int = 0,
        feature_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        channel_noise = bool(getattr(channel, "return_noise", False))
        self.encoder = encoder
        self.channel = channel
        self.decoder = decoder
        self.tx_cam = tx_cam if tx_cam is not None else ChannelAdaptiveModule()
        self.rx_cam = (
            rx_cam if rx_cam is not None else ChannelAdaptiveModule(use_noise=channel_noise)
        )
        if self.rx_cam.use_noise and not channel_noise:
            raise ValueError(
                "rx_cam has use_noise=True but the channel layer does not return its "
                "noise: build the channel with return_noise=True."
            )
        self.power_normalization = PowerNormalization()
        self.snr_train_db = check_snr_range(*snr_train_db)
        check_snr_db(snr_eval_db)
        self._snr_eval_db_init = float(snr_eval_db)
        self.seed = seed
        if float(rate_weight) < 0:
            raise ValueError(f"rate_weight must be >= 0; got {rate_weight}.")
        self.rate_weight = float(rate_weight)
        # I(X;U) bound of a stochastic encoder (nats per example), the "rate" metric
        self.stochastic = bool(getattr(encoder, "stochastic", False))
        if self.stochastic:
            self.rate_metric = keras.metrics.Mean(name="rate")
        if int(feature_dim) < 0 or not float(feature_weight) >= 0:
            raise ValueError(f"feature_dim and feature_weight must be >= 0; got {feature_dim} "
                             f"and {feature_weight}.")
        self.feature_dim = int(feature_dim)
        self.feature_weight = float(feature_weight)
        self.feature_head = None
        if self.feature_dim:
            if not all(hasattr(decoder, a) for a in ("embed", "logits", "embedding_dim")):
                raise ValueError("feature distillation needs a decoder with embed(), logits "
                                 "and embedding_dim (a SemanticDecoder); got "
                                 f"{type(decoder).__name__}.")
            self.feature_head = keras.layers.Dense(self.feature_dim, name="feature_head")
            self.feature_metric = keras.metrics.Mean(name="feature")
        self.snr_seed_generator = keras.random.SeedGenerator(seed)
        self.snr_eval_db = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(snr_eval_db)),
            trainable=False,
            name="snr_eval_db",
        )

    def set_eval_snr(self, snr_db: float) -> None:
        """Set the SNR (dB) used at inference when ``snr_db`` is not passed."""
        check_snr_db(snr_db)
        if ops.ndim(snr_db) != 0:
            raise ValueError("set_eval_snr takes one SNR (a scalar).")
        self.snr_eval_db.assign(float(snr_db))

    def _snr(self, x: Any, snr_db: Any, training: bool | None) -> Any:
        batch = ops.shape(x)[0]
        if snr_db is not None:
            if not ops.is_tensor(snr_db):
                check_snr_db(snr_db)
            return ops.broadcast_to(ops.cast(snr_db, "float32"), (batch,))
        if training:
            low, high = self.snr_train_db
            return keras.random.uniform(
                (batch,), minval=low, maxval=high, seed=self.snr_seed_generator
            )
        return ops.broadcast_to(ops.cast(self.snr_eval_db, "float32"), (batch,))

    def transmit(self, x: Any, snr_db: Any, training: bool | None = None) -> Any:
        """Transmitter only: inputs -> power-normalized real symbols ``[batch, 2n]``."""
        z = self.encoder(x, training=training)
        if isinstance(z, (tuple, list)):  # stochastic encoder: (sample, mu, log_var)
            z, mu, log_var = z
            rate = gaussian_rate(mu, log_var)  # nats per example, float32
            self.rate_metric.update_state(rate)
            if training and self.rate_weight > 0:
                self.add_loss(self.rate_weight * rate)
        return self.power_normalization(self.tx_cam(z, snr_db))

    def receive(self, y: Any, snr_db: Any, noise: Any = None,
                teacher_features: Any = None, training: bool | None = None) -> Any:
        """Receiver only: channel output (and its noise) -> logits.

        With ``teacher_features`` (feature distillation) the feature distance
        of the decoder's last hidden layer is measured (the ``feature``
        metric) and, in training, added to the loss.
        """
        h = self.rx_cam(y, snr_db, noise) if self.rx_cam.use_noise else self.rx_cam(y, snr_db)
        if self.feature_head is None:
            return self.decoder(h)
        if not self.decoder.built:  # embed() and logits bypass the decoder's __call__
            self.decoder.build(tuple(h.shape))
        h = self.decoder.embed(h)
        if not self.feature_head.built:  # also at inference, so saved weights load
            self.feature_head.build((None, self.decoder.embedding_dim))
        if teacher_features is not None:
            distance = ops.mean(feature_distance(self.feature_head(h), teacher_features))
            self.feature_metric.update_state(distance)
            if training:
                self.add_loss(self.feature_weight * distance)
        return self.decoder.logits(h)

    def call(self, x: Any, snr_db: Any = None, training: bool | None = None) -> Any:
        teacher_features = None
        if isinstance(x, (tuple, list)):
            x, teacher_features = x
            if self.feature_head is None:
                raise ValueError("the link got (inputs, teacher features) but was built "
                                 "without feature distillation: pass feature_dim (the "
                                 "features' width) to the link.")
            if teacher_features.shape[-1] != self.feature_dim:
                raise ValueError(f"teacher features are {teacher_features.shape[-1]} wide; "
                                 f"the link was built with feature_dim={self.feature_dim}.")
        snr = self._snr(x, snr_db, training)
        s = self.transmit(x, snr, training=training)
        out = self.channel(s, snr)
        y, noise = out if isinstance(out, (tuple, list)) else (out, None)
        return self.receive(y, snr, noise, teacher_features, training=training)

    def get_config(self) -> dict[str, Any]:
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "encoder": serialize(self.encoder),
            "channel": serialize(self.channel),
            "decoder": serialize(self.decoder),
            "tx_cam": serialize(self.tx_cam),
            "rx_cam": serialize(self.rx_cam),
            "snr_train_db": list(self.snr_train_db),
            "snr_eval_db": self._snr_eval_db_init,
            "seed": self.seed,
            "rate_weight": self.rate_weight,
            "feature_dim": self.feature_dim,
            "feature_weight": self.feature_weight,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TaskOrientedLink:
        config = dict(config)
        for key in ("encoder", "channel", "decoder", "tx_cam", "rx_cam"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def make_link(
    channel: keras.layers.Layer,
    num_symbols: int = 16,
    num_classes: int = 10,
    width: int = 32,
    hidden_units: tuple[int, ...] = (256,),
    stochastic: bool = False,
    downsample: int = 1,
    separable: bool = False,
    **kwargs: Any,
) -> TaskOrientedLink:
    """A :class:`TaskOrientedLink` with :class:`SemanticEncoder` and :class:`SemanticDecoder`.

    The defaults are the plain 1/20 student (width 32, 256 hidden units);
    ``examples/kd_awgn.py`` defaults to ``width=48, separable=True,
    hidden_units=(128,)``, the accuracy-size frontier's point at 1/50 of its
    teacher.

    The input size is taken from the first batch (any ``[H, W, C]``);
    ``downsample`` pools large images first and ``separable`` makes the
    encoder's convolutions depthwise-separable (see :class:`SemanticEncoder`).
    ``kwargs`` go to :class:`TaskOrientedLink` (``snr_train_db``, ``seed``, ...).
    """
    return TaskOrientedLink(
        encoder=SemanticEncoder(num_symbols, width=width, stochastic=stochastic,
                                downsample=downsample, separable=separable),
        channel=channel,
        decoder=SemanticDecoder(num_classes, hidden_units=hidden_units),
        **kwargs,
    )
