"""wgtrack: keeps WireGuard links healthy and visible."""

__version__ = "0.3.0"
