"""The workbench's version, in a module of its own so that low modules (runs, logs) can record it
without importing the package (whose ``__getattr__`` reaches the API, the top of the layers)."""

__version__ = "0.1.0"
