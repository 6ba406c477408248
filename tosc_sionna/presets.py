"""Named student architectures: one name for one configuration.

The accuracy-size frontier (``benchmarks/student_frontier.py``) measured these
students against the EfficientNet-Lite0 teacher (3,383,818 parameters);
:data:`DEFAULT_STUDENT` is the one ``make_link()``, ``examples/kd_awgn.py``
and every benchmark build unless told otherwise.

======================  =======================  ========  =====================
name                    encoder convolutions     hidden    parameters (16 sym.)
======================  =======================  ========  =====================
``"sep-w48-h128"``      separable, width 48      128       65,882 (1/51, default)
``"sep-w36-h128"``      separable, width 36      128       46,454 (1/73)
``"sep-w8-h64"``        separable, width 8       64        15,170 (1/223)
``"conv-w32-h256"``     plain, width 32          256       167,594 (1/20)
``"conv-w16-h256"``     plain, width 16          256       59,034 (1/57)
``"conv-w8-h256"``      plain, width 8           256       30,674 (1/110)
======================  =======================  ========  =====================

(Parameter counts: 16 symbols, stochastic encoder, 10 classes, the receiver
without the effective-noise input; ``tests/test_presets.py`` checks them
against the closed form.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class StudentPreset:
    """The architecture of one named student.

    Parameters
    ----------
    width : int
        Filters of the encoder's first convolution (:class:`~tosc_sionna.SemanticEncoder`).
    separable : bool
        Depthwise-separable convolutions after the first.
    hidden_units : tuple of int
        The decoder's hidden layers (:class:`~tosc_sionna.SemanticDecoder`).
    """

    width: int
    separable: bool
    hidden_units: tuple[int, ...]

    def as_dict(self) -> dict:
        """The preset as keyword arguments of ``make_link``."""
        return {**asdict(self), "hidden_units": tuple(self.hidden_units)}


#: The named students (the table above), by name.
STUDENT_PRESETS: dict[str, StudentPreset] = {
    "sep-w48-h128": StudentPreset(48, True, (128,)),
    "sep-w36-h128": StudentPreset(36, True, (128,)),
    "sep-w8-h64": StudentPreset(8, True, (64,)),
    "conv-w32-h256": StudentPreset(32, False, (256,)),
    "conv-w16-h256": StudentPreset(16, False, (256,)),
    "conv-w8-h256": StudentPreset(8, False, (256,)),
}

#: The student everything builds by default: the frontier's point at 1/51 of the teacher.
DEFAULT_STUDENT = "sep-w48-h128"

#: What a default link sends and how it trains its SNR conditioning (the main job's).
DEFAULT_NUM_SYMBOLS = 16
DEFAULT_SNR_TRAIN_DB = (-10.0, 20.0)


def student_preset(name: str) -> StudentPreset:
    """The :class:`StudentPreset` called ``name``; a ``ValueError`` lists the names."""
    try:
        return STUDENT_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown student preset {name!r}; choose one of "
                         f"{', '.join(STUDENT_PRESETS)}.") from None
