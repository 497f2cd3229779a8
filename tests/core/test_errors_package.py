"""enclavefl.errors: one public path for every error; the enclave loads only the errors it can raise."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import enclavefl.errors as errors


def test_every_public_error_resolves_under_the_public_path() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)

        assert issubclass(cls, errors.EnclaveFLError), name
        assert cls.__module__ == "enclavefl.errors", name


def test_the_lazy_table_names_exactly_what_each_private_module_defines() -> None:
    for part in ("_verification", "_outside"):
        module = importlib.import_module(f"enclavefl.errors.{part}")

        assert {n for n, p in errors._LAZY.items() if p == part} == set(module.__all__)


def test_importing_the_errors_loads_neither_verification_nor_outside_errors() -> None:
    code = "import sys, enclavefl.errors\nprint(sorted(m for m in sys.modules if m.startswith('enclavefl.errors.')))\n"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()

    assert out == "['enclavefl.errors._common']"


def test_a_lazily_loaded_leaf_keeps_its_place_in_the_tree() -> None:
    from enclavefl.errors import MrEnclaveMismatch, SitePolicyRefused

    assert issubclass(MrEnclaveMismatch, errors.AttestationError)
    assert issubclass(SitePolicyRefused, errors.EnclaveFLError)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchError"):
        errors.NoSuchError
