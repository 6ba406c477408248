"""The receiver's semantic decoder: received symbols -> task logits."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from ..checks import check_int


@keras.saving.register_keras_serializable(package="tosc_sionna")
class SemanticDecoder(keras.layers.Layer):
    r"""MLP task head from received features to class logits.

    Parameters
    ----------
    num_classes : int
        C, the number of task classes.
    hidden_units : sequence of int, (default (256,))
        Widths of the ReLU hidden layers.

    Input
    -----
    features : [batch, d], float
        Received (equalized, channel-adapted) symbols.

    return_embedding : bool, (default False)
        Call argument: also return the last hidden layer's output (what
        feature distillation matches to the teacher's features).

    Output
    ------
    logits : [batch, num_classes], float
        Or, with ``return_embedding=True``, the pair ``(logits, embedding)``,
        ``embedding`` ``[batch, embedding_dim]``.
    """

    def __init__(
        self, num_classes: int, hidden_units: tuple[int, ...] = (256,), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_int("num_classes", num_classes, 2)
        if isinstance(hidden_units, (int, float)):
            raise ValueError(
                f"hidden_units must be a sequence of layer sizes, e.g. ({hidden_units},); got "
                f"{hidden_units!r}.")
        self.hidden_units = tuple(check_int("hidden_units", u, 1) for u in hidden_units)
        self.hidden = [layers.Dense(u, activation="relu") for u in self.hidden_units]
        self.logits = layers.Dense(self.num_classes)

    def build(self, input_shape: Any) -> None:
        shape = tuple(input_shape)
        if len(shape) != 2:
            raise ValueError(f"SemanticDecoder expects [batch, d]; got shape {shape}.")
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.logits.build(shape)
        self.built = True

    @property
    def embedding_dim(self) -> int:
        """Width of :meth:`embed`'s output: the last hidden layer (or the input if none)."""
        if self.hidden_units:
            return self.hidden_units[-1]
        if not self.built:
            raise ValueError("a SemanticDecoder without hidden layers must be built first.")
        return int(self.logits.kernel.shape[0])

    def embed(self, features: Any) -> Any:
        """The last hidden layer's output ``[batch, embedding_dim]`` (what feature
        distillation matches to the teacher's features); ``call`` maps it to logits."""
        for layer in self.hidden:
            features = layer(features)
        return features

    def call(self, features: Any, return_embedding: bool = False) -> Any:
        embedding = self.embed(features)
        logits = self.logits(embedding)
        return (logits, embedding) if return_embedding else logits

    def compute_output_shape(self, input_shape: Any, return_embedding: bool = False) -> Any:
        logits = (tuple(input_shape)[0], self.num_classes)
        if not return_embedding:
            return logits
        width = self.hidden_units[-1] if self.hidden_units else tuple(input_shape)[-1]
        return logits, (tuple(input_shape)[0], width)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "hidden_units": list(self.hidden_units),
        }
