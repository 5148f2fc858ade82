"""porter: port CPython extension modules to multi-phase init with per-module state."""

__version__ = "0.2.0"
