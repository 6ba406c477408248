"""The teacher side of tosc-sionna.

NumPy/h5py modules (``datasets``) are shared with ``tosc_sionna``; modules
that need torch and transformers import them lazily, so importing this package
never imports torch, and it never imports TensorFlow.
"""

__version__ = "0.4.0"
