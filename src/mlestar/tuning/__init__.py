"""Tuning: Optuna search over the training plan, ablations, and the seeded before/after comparison.

Modules, lowest first: ``space`` (drawing a search space, conditions),
``storage`` (SQLite, journal file or database URL), ``job`` (the
self-contained description a worker runs), ``trainer`` (trial and retrain
runs), ``objective`` (one trial, constraints, pruning), ``study`` (create,
continue, join, worker loop, dead-worker handling), ``ablation``,
``compare``, ``report`` and ``plots`` (results), ``search`` (the phases of
stage 6) and ``standalone`` (``mlestar tune``). See docs/refinement.md.
"""
