"""Compression of teacher outputs, and its exact inverse (NumPy only): one module per kind.

* ``topk`` (:mod:`.topk`): the k largest probabilities as float16 with their
  class indices; the remaining mass is spread evenly over the other classes.
* ``logits`` (:mod:`.logits`): all C logits as float16 (best when C is small).
* ``basis`` (:mod:`.basis`): a low-rank model of the logits fitted per cache,
  int8 coefficients plus 4-bit residuals of the classes it ranks highest.
* ``tcq`` (:mod:`.tcq`): a fixed number of bits per row, trellis-coded.

Each kind is a :class:`~tosc_cache.codecs.base.Codec`; :func:`get_codec` maps
a spec's ``probs`` to it. This registry is the one place where the kind's name
is dispatched on. Pooled features are compressed by :mod:`tosc_cache.features`.
"""

from __future__ import annotations

from .base import Codec, Layout
from .basis import (
    CALIBRATION_ROWS,
    BasisCodec,
    basis_approx,
    basis_arrays,
    basis_bytes,
    basis_support,
    decode_basis,
    encode_basis,
    fit_basis,
)
from .logits import LogitsCodec, logits_kl_bound
from .tcq import (
    TCQ_CALIBRATION_ROWS,
    TcqCodec,
    check_tcq,
    decode_tcq,
    encode_tcq,
    fit_tcq,
    lloyd_levels,
    tcq_arrays,
    tcq_defaults,
    tcq_levels_width,
    tcq_split,
)
from .topk import TOPK_TAIL_FLOOR, TopkCodec, decode_topk, encode_topk, index_dtype

#: Every compression kind, by its ``probs`` name.
CODECS: dict[str, Codec] = {codec.kind: codec for codec in (
    TopkCodec(), LogitsCodec(), BasisCodec(), TcqCodec())}
PROB_METHODS = tuple(CODECS)


def get_codec(kind: str) -> Codec:
    """The codec of a compression kind (a spec's ``probs``); ValueError for an unknown one."""
    try:
        return CODECS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"probs must be one of {PROB_METHODS}; got {kind!r}.") from None


__all__ = [
    "CALIBRATION_ROWS", "CODECS", "PROB_METHODS", "TCQ_CALIBRATION_ROWS", "TOPK_TAIL_FLOOR",
    "BasisCodec", "Codec", "Layout", "LogitsCodec", "TcqCodec", "TopkCodec",
    "basis_approx", "basis_arrays", "basis_bytes", "basis_support", "check_tcq",
    "decode_basis", "decode_tcq", "decode_topk", "encode_basis", "encode_tcq", "encode_topk",
    "fit_basis", "fit_tcq", "get_codec", "index_dtype", "lloyd_levels", "logits_kl_bound",
    "tcq_arrays", "tcq_defaults", "tcq_levels_width", "tcq_split",
]
