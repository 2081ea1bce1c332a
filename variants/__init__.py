"""Variant experiments: a mutation store (SQLite), experiment plans, plugins, models and the variant worker.

See ``variants/README.md``: import a mutation table with ``python -m variants.store import``, train
with ``python -m variants.train PLAN.json``, serve with ``python -m variants.service.worker``.
"""

__version__ = "0.1.0"
