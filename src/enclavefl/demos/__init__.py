"""Runnable scenarios built on the roles (examples that ship with the package)."""
