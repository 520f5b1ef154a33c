"""The package version, importable without import cycles."""

__version__ = "0.1.0"
