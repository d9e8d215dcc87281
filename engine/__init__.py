"""scamwatch: streaming indicator matching against tech-support scam fraud."""

__version__ = "0.1.0"
