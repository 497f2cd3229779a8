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


def test_the_errors_loaded_at_once_are_every_name_errors_common_defines() -> None:
    """errors/_common.py has no __all__: `from ._common import *` takes every public name, so it defines nothing
    but the error classes, each re-exported by enclavefl.errors."""
    from enclavefl.errors import _common

    public = {n for n in vars(_common) if not n.startswith("_")}

    assert public == set(errors._AT_ONCE)
    assert all(issubclass(getattr(_common, n), errors.EnclaveFLError) for n in public)


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


def test_the_enclave_asks_only_for_errors_it_loads_at_once() -> None:
    """A lazily loaded leaf is no file of the enclave's closure (it is loaded by name): an enclave module that
    raised or caught one would load a module Gramine does not trust. Every error an enclave module names, in the
    release's closure (every optional part), is one of errors/_common.py's."""
    import ast

    from enclavefl.tee.gramine_pkg.tcb import PACKAGE_DIR, enclave_modules

    asked: dict[str, set[str]] = {}
    for module in enclave_modules():
        tree = ast.parse((PACKAGE_DIR / module.path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "enclavefl.errors":
                asked.setdefault(module.path, set()).update(a.name for a in node.names)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "errors":
                asked.setdefault(module.path, set()).add(node.attr)
    lazy = {path: sorted(names - {*errors._AT_ONCE, "_common"}) for path, names in asked.items()}

    assert {path: names for path, names in lazy.items() if names} == {}
    assert "NotEnrolled" in asked["transport/auth.py"]  # the probe sees the enclave's imports
