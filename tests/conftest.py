"""Shared pytest configuration: the throwaway services live in tests/services.py."""

pytest_plugins = ["tests.services", "tests.browser"]
