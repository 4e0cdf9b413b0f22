"""Non-linear transform nodes: maps with no matrix, evaluated per output chunk.

Every node here is a pull map (output coordinates -> input coordinates) that composes with
``@`` with any other transform. The planner compiles a whole chain into one map evaluated
per output chunk (:func:`transfuse.planner.lower.compile_map`); nothing here evaluates
itself inside a task or builds a full-size coordinate array.

* :class:`DisplacementField` — ``p -> p + u(p)``, ``u`` sampled from a gridded field.
* :class:`ExprMap` — one sympy expression of the output coordinates per input axis.
* :class:`FunctionMap` — a Python callable (the :func:`scipy.ndimage.geometric_transform`
  case).
* :class:`CoordinateMap` — absolute coordinates for every output point (defines the grid).
* :class:`InverseExprMap` — the numerical inverse of an :class:`ExprMap` (Newton).

Points passed to ``T(points)`` have shape ``(..., ndim)`` as for the affine transforms.
"""

from .base import NonlinearTransform, array_token, evaluator, freeze_array, register_evaluator
from .coordinates import CoordinateMap
from .expression import ExprMap, InverseExprMap
from .field import DisplacementField
from .function import FunctionMap

__all__ = [
    "NonlinearTransform",
    "CoordinateMap",
    "DisplacementField",
    "ExprMap",
    "FunctionMap",
    "InverseExprMap",
    "array_token",
    "evaluator",
    "freeze_array",
    "register_evaluator",
]
