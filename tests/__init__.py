"""The test suite, a package so that test modules can share ``tests.strategies`` and
``tests.helpers`` (pytest runs with ``--import-mode=importlib``; see ``tests/conftest.py``)."""
