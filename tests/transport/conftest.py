"""Fixtures for the network tests (helpers live in transport_harness.py)."""

from __future__ import annotations

from transport_harness import federation, federation_factory

__all__ = ["federation", "federation_factory"]
