"""Helpers shared by the tests, imported as ``tests._support.<module>`` (pytest.ini puts the project root on the path)."""
