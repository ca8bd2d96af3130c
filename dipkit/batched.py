"""Fit K networks at once (kept for its name: :func:`dipkit.fit_many` lives in :mod:`dipkit.fit`).

``from dipkit.batched import fit_many, member_models`` still works; the engine behind both
:func:`dipkit.fit` and :func:`fit_many` is :mod:`dipkit.engine`, its network runners
:mod:`dipkit.members`.
"""

from .fit import fit_many
from .members import member_models

__all__ = ["fit_many", "member_models"]
