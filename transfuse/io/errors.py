"""Errors of transfuse.io: one exception per kind of document."""

from __future__ import annotations

__all__ = ["FormatError", "RecipeError"]


class FormatError(ValueError):
    """A transform file or metadata document does not follow its format (ITK, OME-NGFF)."""


class RecipeError(FormatError):
    """A recipe is malformed, unsafe, over a limit, or cannot be encoded: the only exception
    reading a recipe's content raises.

    The message says what is wrong and where, as a JSON path such as
    ``transform.transforms[2].angle``; the path is also kept in :attr:`path`.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        Where in the recipe (empty for the document as a whole).

    Examples
    --------
    >>> err = RecipeError("must be a number, got a string", "transform.angle")
    >>> str(err)
    'transform.angle: must be a number, got a string'
    >>> err.path
    'transform.angle'
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, message: str, path: str = ""):
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)
