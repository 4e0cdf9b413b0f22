"""transfuse: compose n-dimensional geometric transforms lazily and resample once."""

from .transforms import *  # noqa: F403
from .transforms import __all__ as _transforms_all

__version__ = "0.1.0"
__all__ = [*_transforms_all]
