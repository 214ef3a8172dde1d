"""The package version, read by setup.cfg and sent in the connect frame's agent string."""

__version__ = "0.1.0"
