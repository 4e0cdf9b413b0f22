"""Transform nodes: immutable, hashable descriptions of coordinate maps (pull direction)."""

from .affine import (
    Affine,
    AffineTransform,
    Flip,
    Identity,
    Permute,
    Rotate,
    Scale,
    Shear,
    Translate,
    split_affine_matrix,
)
from .base import Compose, Transform
from .grid import Grid
from .nonlinear import (
    CoordinateMap,
    DisplacementField,
    ExprMap,
    FunctionMap,
    InverseExprMap,
    NonlinearTransform,
)
from .params import symbols

__all__ = [
    "Affine",
    "AffineTransform",
    "Compose",
    "CoordinateMap",
    "DisplacementField",
    "ExprMap",
    "FunctionMap",
    "Grid",
    "InverseExprMap",
    "NonlinearTransform",
    "Flip",
    "Identity",
    "Permute",
    "Rotate",
    "Scale",
    "Shear",
    "Transform",
    "Translate",
    "split_affine_matrix",
    "symbols",
]
