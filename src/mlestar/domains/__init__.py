"""Problem domains behind one seam (see DOMAINS.md in the shared notes): images today, tables next.

Each domain brings its data loading, analysis, models and evaluation; the
seven stages, runner, tracking and serving stay domain-neutral. The image
code still lives in the layers below (``data``, ``training``, ...); tables
start here with loading and column typing.
"""
