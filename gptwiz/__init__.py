"""gptwiz: a terminal wizard and trainer for small GPT language models."""

__version__ = "0.1.0"
