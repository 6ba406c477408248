"""The end-to-end task-oriented link: encoder -> channel -> decoder (outputs only)."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from .backends import ops as backend_ops
from .channels.base import ChannelLayer, noise_keywords
from .layers import ChannelAdaptiveModule, PowerNormalization, SemanticDecoder, SemanticEncoder
from .presets import DEFAULT_NUM_SYMBOLS, DEFAULT_SNR_TRAIN_DB, DEFAULT_STUDENT, student_preset
from .snr import check_snr_db, check_snr_range

#: Where the sampling noise's counter starts: far from the SNR stream's (which starts at 0).
_SAMPLE_STREAM = 2**30
#: Constructor arguments of a 0.4 link that moved to the trainer (training only).
_TRAINING_ONLY_0_4 = ("rate_weight", "feature_dim", "feature_weight")
#: How far float images may stray outside [0, 1] (interpolation overshoot) before a refusal.
PIXEL_TOLERANCE = 0.01


def check_pixel_values(x: Any) -> None:
    """Refuse concrete float images outside ``[0, 1]`` (beyond :data:`PIXEL_TOLERANCE`).

    NumPy arrays and eager tensors are checked; traced tensors cannot be.
    """
    if isinstance(x, np.ndarray):
        value = x
    elif backend_ops.is_tensor(x):
        value = backend_ops.static_value(x)
        if value is None:
            return
    else:
        return
    if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
        return
    low, high = float(np.min(value)), float(np.max(value))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("Images contain NaN or inf; the link takes floats in [0, 1].")
    if low < -PIXEL_TOLERANCE or high > 1.0 + PIXEL_TOLERANCE:
        raise ValueError(
            f"Images must be floats in [0, 1] (or uint8 pixels); got values from {low:g} to "
            f"{high:g}. Divide 0..255 pixels by 255 (tosc_sionna.data.student_inputs does).")


def link_images(x: Any) -> Any:
    """Images as the encoder takes them: uint8 pixels become floats ``x / 255``."""
    dtype = str(getattr(x, "dtype", ""))
    if "uint8" in dtype:
        return ops.cast(x, "float32") / 255.0
    if "int" in dtype or "bool" in dtype:
        raise ValueError(
            f"Images must be uint8 pixels (0..255) or floats in [0, 1]; got dtype {dtype}.")
    return x


class ImageArrayChecks:
    """``fit`` and ``evaluate`` of a model that takes images check an image array once.

    A training step cannot read its batch back cheaply, so arrays are checked
    here, before Keras slices them (``uint8`` batches are converted where the
    model is called).
    """

    def fit(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        check_pixel_values(x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        check_pixel_values(x)
        return super().evaluate(x, *args, **kwargs)


@keras.saving.register_keras_serializable(package="tosc_sionna")
class TaskOrientedLink(ImageArrayChecks, keras.Model):
    r"""Semantic encoder -> CAM -> power normalization -> channel -> CAM -> decoder.

    A pure model: it computes outputs and registers no loss and no metric.
    Training terms (label, distillation, rate, features) belong to the
    trainer, :class:`~tosc_sionna.training.DistillationTrainer`, which reads
    what it needs from :meth:`propagate`.

    In training (``training=True`` and no ``snr_db`` given) an SNR is drawn
    per example, uniformly in ``snr_train_db``; otherwise the link runs at
    ``snr_db`` if given, else at its evaluation SNR (``set_eval_snr``), a
    non-trainable variable so compiled ``evaluate``/``predict`` functions see
    changes. The transmitter's channel-adaptive module sees the SNR; the
    receiver's also sees the equalizer's effective noise when the channel
    layer was built with ``return_noise=True``.

    A stochastic encoder (``SemanticEncoder(stochastic=True)``) is sampled,
    ``z = mu + exp(log_var / 2) * eps``, where ``sample`` says: by default in
    training only, so inference sends the mean.

    Parameters
    ----------
    encoder : SemanticEncoder (or any layer mapping inputs to [batch, 2n])
        A layer returning ``(mu, log_var)`` (``log_var`` None when
        deterministic) or a plain ``[batch, 2n]`` tensor.
    channel : a channel layer (:class:`~tosc_sionna.AWGNChannel`, ...)
    decoder : SemanticDecoder (or any layer mapping [batch, 2n] to logits)
    tx_cam, rx_cam : ChannelAdaptiveModule or None
        Default: new modules (the receiver's with ``use_noise`` equal to the
        channel's ``return_noise``).
    snr_train_db : (float, float), (default (-10.0, 20.0))
        Range of the per-example training SNR, dB.
    snr_eval_db : float, (default 10.0)
        SNR used at inference when none is passed, dB.
    seed : int or None, (default None)
        Seed of the training-SNR draws and of the encoder's sampling noise.

    Input
    -----
    x : [batch, H, W, C], float
        Encoder inputs (images in [0, 1]).
    snr_db : None, scalar or [batch], float
        Optional SNR in dB.
    sample : bool or None, (default None: ``training``)
        Sample a stochastic encoder.

    Output
    ------
    logits : [batch, num_classes], float

    Example
    -------
    >>> link = make_link(AWGNChannel())          # the default student
    >>> logits = link(images, snr_db=10.0)       # [batch, 10]
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        channel: keras.layers.Layer,
        decoder: keras.layers.Layer,
        tx_cam: ChannelAdaptiveModule | None = None,
        rx_cam: ChannelAdaptiveModule | None = None,
        snr_train_db: tuple[float, float] = DEFAULT_SNR_TRAIN_DB,
        snr_eval_db: float = 10.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        moved = sorted(set(kwargs) & set(_TRAINING_ONLY_0_4))
        if moved:
            raise TypeError(
                f"TaskOrientedLink no longer takes {', '.join(moved)} (since 0.5 the link "
                "only computes outputs): pass them to tosc_sionna.training."
                "DistillationTrainer (rate_weight -> beta).")
        if not isinstance(channel, ChannelLayer):
            raise TypeError(
                f"The link's channel must be a tosc_sionna.ChannelLayer; got "
                f"{type(channel).__module__}.{type(channel).__name__}. Wrap a Sionna block or "
                "your own model in a ChannelLayer subclass with a transmit(s, no) method "
                "(docs/channels.md, 'Your own channel').")
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
        if isinstance(snr_train_db, (str, bytes)) or len(tuple(snr_train_db)) != 2:
            raise ValueError(
                f"snr_train_db must be a (low, high) pair of dB; got {snr_train_db!r}. For one "
                "training SNR pass (snr, snr).")
        self.snr_train_db = check_snr_range(*snr_train_db)
        check_snr_db(snr_eval_db)
        self._snr_eval_db_init = float(snr_eval_db)
        self.seed = seed
        self.snr_seed_generator = keras.random.SeedGenerator(seed)
        # a stream of its own, so sampling does not shift the SNR draws: the same seed with
        # a counter 2^30 draws ahead (seed + 1 would be the SNR stream of a link seeded so)
        self.sample_seed_generator = keras.random.SeedGenerator(seed)
        if seed is not None:
            self.reseed(int(seed))
        self.snr_eval_db = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(snr_eval_db)),
            trainable=False,
            name="snr_eval_db",
        )

    def build(self, input_shape: Any) -> None:
        """Build every sub-layer by running one inference example of ``input_shape[1:]``
        (the layers take their sizes from their inputs; the channel layers build on use)."""
        shape = tuple(input_shape)
        self.propagate(ops.zeros((1, *shape[1:]), dtype=self.compute_dtype), snr_db=10.0,
                       training=False, sample=False,
                       return_embedding=hasattr(self.decoder, "embedding_dim"))
        self.built = True

    @property
    def stochastic(self) -> bool:
        """Whether the encoder is stochastic (has a log-variance head)."""
        return bool(getattr(self.encoder, "stochastic", False))

    def set_eval_snr(self, snr_db: float) -> None:
        """Set the SNR (dB) used at inference when ``snr_db`` is not passed."""
        if isinstance(snr_db, (str, bytes)):
            raise TypeError(f"set_eval_snr takes a number of dB; got {snr_db!r}.")
        check_snr_db(snr_db)
        if ops.ndim(snr_db) != 0:
            raise ValueError("set_eval_snr takes one SNR (a scalar).")
        self.snr_eval_db.assign(float(snr_db))

    def reseed(self, seed: int) -> None:
        """Restart the encoder's sampling noise from ``seed``: two links with the same
        weights, reseeded alike, draw the same noise (a sampled evaluation reproduces)."""
        state = self.sample_seed_generator.state
        state.assign(ops.convert_to_tensor([int(seed), _SAMPLE_STREAM], dtype=state.dtype))

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

    def encode(self, x: Any, training: bool | None = None,
               sample: bool | None = None) -> tuple[Any, Any, Any]:
        """``(z, mu, log_var)``: the encoder's latent, sampled where ``sample`` (default
        ``training``) says, with its mean and log-variance (None if deterministic)."""
        out = self.encoder(x, training=training)
        mu, log_var = out if isinstance(out, (tuple, list)) else (out, None)
        if log_var is None or not (training if sample is None else sample):
            return mu, mu, log_var
        eps = keras.random.normal(ops.shape(mu), seed=self.sample_seed_generator,
                                  dtype=mu.dtype)
        return mu + ops.exp(0.5 * log_var) * eps, mu, log_var

    def transmit(self, x: Any, snr_db: Any = None, training: bool | None = None,
                 sample: bool | None = None) -> Any:
        """Transmitter only: inputs -> power-normalized real symbols ``[batch, 2n]``
        (``snr_db`` as in ``call``: None is the training draw or the evaluation SNR)."""
        return self._send(x, self._snr(x, snr_db, training), training, sample)[0]

    def _send(self, x: Any, snr: Any, training: bool | None,
              sample: bool | None) -> tuple[Any, Any, Any]:
        # the transmitter chain, shared by transmit and propagate: (symbols, mu, log_var)
        z, mu, log_var = self.encode(x, training=training, sample=sample)
        return self.power_normalization(self.tx_cam(z, snr)), mu, log_var

    def receive(self, y: Any, snr_db: Any, noise: Any = None, training: bool | None = None,
                return_embedding: bool = False) -> Any:
        """Receiver only: channel output ``[batch, 2n]`` (and, when ``rx_cam.use_noise``,
        the equalizer's effective noise ``[batch, n]``) -> logits ``[batch, classes]``;
        with ``return_embedding`` the pair ``(logits, decoder embedding)``."""
        snr = self._snr(y, snr_db, training)
        h = self.rx_cam(y, snr, noise) if self.rx_cam.use_noise else self.rx_cam(y, snr)
        if return_embedding:
            return self.decoder(h, return_embedding=True)
        return self.decoder(h)

    def propagate(self, x: Any, snr_db: Any = None, training: bool | None = None,
                sample: bool | None = None, return_embedding: bool = False) -> dict[str, Any]:
        """The whole link, returning what a trainer needs besides the logits.

        (Not ``forward``: on Keras' torch backend that name is ``torch.nn.Module``'s.)

        Output
        ------
        dict
            ``logits`` ``[batch, classes]``; ``mu`` and ``log_var`` ``[batch, 2n]``,
            the encoder's latent (``log_var`` None if deterministic); ``snr_db``
            ``[batch]``, the SNR each example ran at; with ``return_embedding``,
            ``embedding``, the decoder's last hidden layer ``[batch, D]`` (needs a
            decoder with ``return_embedding``, e.g. :class:`SemanticDecoder`).
        """
        snr = self._snr(x, snr_db, training)
        symbols, mu, log_var = self._send(x, snr, training, sample)
        out = self.channel(symbols, snr_db=snr)
        y, noise = out if isinstance(out, (tuple, list)) else (out, None)
        logits = self.receive(y, snr, noise, training=training,
                              return_embedding=return_embedding)
        result = {"mu": mu, "log_var": log_var, "snr_db": snr}
        if return_embedding:
            result["logits"], result["embedding"] = logits
        else:
            result["logits"] = logits
        return result

    def __call__(self, x: Any, *args: Any, snr_db: Any = None, no: Any = None,
                 **kwargs: Any) -> Any:
        # before Keras converts the inputs: a (images, features) pair is a 0.4 habit
        if isinstance(x, (tuple, list)):
            raise ValueError(
                "TaskOrientedLink takes images only: teacher features are training targets "
                "(TeacherCacheDataset(features=True) yields them in y['features'] for "
                "tosc_sionna.training.DistillationTrainer).")
        # as for the channel layers: never guess between dB and a noise variance
        snr_db = noise_keywords("TaskOrientedLink", args, snr_db, no, required=False)
        if snr_db is not None:
            kwargs["snr_db"] = snr_db
        if not kwargs.get("training"):  # a training step's batch is not read back
            check_pixel_values(x)
        return super().__call__(link_images(x), **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        check_pixel_values(x)
        return super().predict(x, *args, **kwargs)

    def call(self, x: Any, snr_db: Any = None, training: bool | None = None,
             sample: bool | None = None) -> Any:
        return self.propagate(x, snr_db, training=training, sample=sample)["logits"]

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
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TaskOrientedLink:
        config = dict(config)
        for key in ("encoder", "channel", "decoder", "tx_cam", "rx_cam"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        moved = {key: config.pop(key) for key in _TRAINING_ONLY_0_4 if key in config}
        if moved.get("feature_dim"):
            raise ValueError(
                "This .keras file was written by tosc-sionna 0.4 with a training-only feature "
                f"head (feature_dim={moved['feature_dim']}), which 0.5 keeps in the trainer: "
                "load it with tosc-sionna 0.4 (pip install 'tosc-sionna==0.4.*'), then save "
                "a link without feature_dim, or retrain with "
                "tosc_sionna.training.DistillationTrainer(feature_dim=...).")
        if moved:
            warnings.warn(
                "Loading a tosc-sionna 0.4 link: its training settings "
                f"({', '.join(f'{k}={v}' for k, v in moved.items())}) belong to "
                "tosc_sionna.training.DistillationTrainer since 0.5 and were dropped; the "
                "link's weights and outputs are unchanged.", stacklevel=2)
        return cls(**config)


def make_link(
    channel: keras.layers.Layer,
    student: str = DEFAULT_STUDENT,
    num_symbols: int = DEFAULT_NUM_SYMBOLS,
    num_classes: int = 10,
    stochastic: bool = True,
    downsample: int = 1,
    **kwargs: Any,
) -> TaskOrientedLink:
    """A :class:`TaskOrientedLink` built from a named student (:mod:`tosc_sionna.presets`).

    The default is the default student everywhere (``examples/kd_awgn.py``,
    every benchmark): ``"sep-w48-h128"``, a stochastic depthwise-separable
    encoder of width 48 and one hidden layer of 128 (65,882 parameters for 16
    symbols and 10 classes, 1/51 of the shipped teacher), trained over SNRs in
    [-10, 20] dB.

    ``width``, ``separable`` and ``hidden_units`` in ``kwargs`` override the
    preset's (a custom student); the input size is taken from the first batch
    (any ``[H, W, C]``), ``downsample`` pools large images first (see
    :class:`SemanticEncoder`). Other ``kwargs`` go to :class:`TaskOrientedLink`
    (``snr_train_db``, ``snr_eval_db``, ``seed``, ``tx_cam``, ``rx_cam``).
    """
    arch = {**student_preset(student).as_dict(),
            **{k: kwargs.pop(k) for k in ("width", "separable", "hidden_units") if k in kwargs}}
    return TaskOrientedLink(
        encoder=SemanticEncoder(num_symbols, width=arch["width"], stochastic=stochastic,
                                downsample=downsample, separable=arch["separable"]),
        channel=channel,
        decoder=SemanticDecoder(num_classes, hidden_units=tuple(arch["hidden_units"])),
        **kwargs,
    )
