"""tosc-sionna: lightweight task-oriented semantic communication for Sionna."""
from .channels import *  # noqa
