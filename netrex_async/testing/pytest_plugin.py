"""Pytest fixtures for the fake Netrex provider (work in progress)."""
