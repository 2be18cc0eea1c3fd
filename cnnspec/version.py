"""The package's version (pyproject.toml's), in a module of its own: the exporter writes it into
every model's metadata without importing the façade above the backends."""

__version__ = "0.1.0"
