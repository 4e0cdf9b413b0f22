"""Import ``dask.array`` without the xarray import that dask does on the side.

Where xarray is installed, importing ``dask.array`` imports xarray, and with it pandas —
0.3-0.5 s, about as long as dask.array itself takes — only so that
:func:`dask.array.from_array` can recognise a dask-backed ``xarray.DataArray``.
:func:`import_dask_array` imports ``dask.array`` with that one optional import skipped and
then hands ``dask.array.core`` a stand-in for the xarray module (:class:`XarrayWhenImported`).
An object can only be an ``xarray.DataArray`` once xarray has been imported, so the stand-in
answers as xarray would: dask behaves exactly as before, whichever module imports xarray
later. Where dask.array (or xarray) is already imported, nothing is changed.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["XarrayWhenImported", "import_dask_array"]


class _NoInstances:
    """A class nothing is an instance of: ``xarray.DataArray`` before xarray is imported."""


class XarrayWhenImported:
    """Stands for the xarray module inside ``dask.array.core``: xarray's own attribute once
    xarray is imported; before that ``DataArray`` is a class with no instances and any
    other attribute imports xarray (so a future dask use of it stays right, if slower).

    Examples
    --------
    >>> stand_in = XarrayWhenImported()
    >>> isinstance(object(), stand_in.DataArray)  # imported or not, this is no DataArray
    False
    """

    def __getattr__(self, name):
        module = sys.modules.get("xarray")
        if module is None:
            if name == "DataArray":
                return _NoInstances
            module = importlib.import_module("xarray")
        return getattr(module, name)


def import_dask_array() -> None:
    """Import ``dask.array`` (see the module's docstring); a no-op once it is imported."""
    if "dask.array" in sys.modules or "xarray" in sys.modules:
        import dask.array  # noqa: F401

        return
    from dask import _compatibility

    original = getattr(_compatibility, "import_optional_dependency", None)
    if original is None:  # another dask: import it as it comes
        import dask.array  # noqa: F401

        return

    def without_xarray(name, *args, **kwargs):
        if name == "xarray":
            return None
        return original(name, *args, **kwargs)

    _compatibility.import_optional_dependency = without_xarray
    try:
        import dask.array.core as core
    finally:
        _compatibility.import_optional_dependency = original
    if getattr(core, "xr", "absent") is None:  # the one name dask binds to the module
        core.xr = XarrayWhenImported()
