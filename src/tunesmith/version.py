"""The version, in a module that imports nothing (run folders and reports stamp it)."""

__version__ = "0.1.0"
