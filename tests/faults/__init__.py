"""The fault-injection suite. A package, so that its conftest.py does not shadow tests/conftest.py:
pytest puts tests/ on sys.path for it, and `from conftest import run_cli` finds the shared fixtures."""
