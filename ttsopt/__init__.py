"""ttsopt: an optimising export and compilation toolchain for neural text-to-speech models."""

__version__ = "0.1.0"
