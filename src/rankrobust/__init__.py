"""rankrobust: a singular value perspective on model robustness (reproduction pipeline)."""

__version__ = "0.1.0"
