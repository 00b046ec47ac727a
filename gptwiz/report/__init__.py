"""`gptwiz report`: pictures of one run or a comparison of several, read from their run folders.

series (the folder as series) -> differences (what tells runs apart) -> summary (header, table) -> figure
(matplotlib: PNG, SVG), html (one self-contained file), terminal (plotext). `build` ties them together.
"""
