"""mlestar: take an image-classification problem from raw data to a served model.

Seven MLE-Star stages (situation analysis, task definition, action planning,
implementation, results evaluation, refinement, deployment preparation) run
under one runner that owns ordering, quality gates, loop-backs, caching,
lineage, the audit trail and resume.
"""

__version__ = "0.1.0"
