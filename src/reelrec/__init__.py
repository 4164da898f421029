"""reelrec: real-time recommendation engine for short-video feeds."""

__version__ = "0.1.0"
