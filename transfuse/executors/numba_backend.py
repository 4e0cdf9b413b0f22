"""The ``"numba"`` backend name, kept for scripts written when the compiled kernel was
opt-in: it is the default ``"cpu"`` backend (:mod:`.cpu`) under its old name."""

from __future__ import annotations

from .cpu import CPUExecutor

__all__ = ["NumbaExecutor"]


class NumbaExecutor(CPUExecutor):
    """The ``"cpu"`` backend under its former opt-in name."""

    name = "numba"
