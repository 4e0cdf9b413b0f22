"""Limits on what reading and writing a recipe may build (see ``docs/recipes.md``)."""

#: Largest recipe text (bytes of a file, or characters of a string).
MAX_TEXT_BYTES = 10 * 2**20
#: Deepest nesting of JSON objects and arrays.
MAX_DEPTH = 64
#: Most transform nodes in one recipe.
MAX_NODES = 10_000
#: Most expression nodes in one recipe (all expressions together).
MAX_TOTAL_EXPR_NODES = 100_000
#: :func:`write_recipe` writes arrays with more elements than this to ``.npy`` files.
INLINE_ELEMENTS = 4_096
#: Most elements of an array written inline (in the JSON text).
MAX_INLINE_ELEMENTS = 2**20
#: Largest ``.npy`` file a recipe may refer to (its array data, in bytes).
MAX_NPY_BYTES = 2**32
#: Most bytes of ``.npy`` array data one recipe may load, all its files together (a file
#: referred to several times is loaded, and counted, once).
MAX_TOTAL_NPY_BYTES = 2**33
#: Largest number of dimensions of a stored array, of an ``ndim`` field and of an axis index.
MAX_NDIM = 32
#: Largest single extent in ``output_shape`` or ``output_chunks``.
MAX_EXTENT = 2**48
