"""Helpers shared by the test lanes (fixtures are in the lanes' conftest.py files)."""
