"""minerd: keeps a mining site under its grid quota with the most hashrate."""

__version__ = "0.1.0"
