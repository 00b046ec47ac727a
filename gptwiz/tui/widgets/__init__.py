"""Widgets that draw the data they are handed; none of them reads files or processes."""
