"""wgtrack's few exception types, all from one base."""


class WgtrackError(Exception):
    """Base of wgtrack's own exceptions."""


class StartupError(WgtrackError):
    """Something the daemon needs at start is missing (an output directory, say)."""
