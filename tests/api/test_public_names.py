"""The public surface, as httpx's tests/test_exported_members.py checks its own: every name in `enclavefl.__all__`
resolves, shows a public `__module__`, and `__all__` is sorted and equal to the list docs/api.md documents. The one
table of names is enclavefl/api/public.py; `enclavefl/__init__.pyi` (what mypy reads) is generated from it:

    .venv/bin/python tests/api/test_public_names.py > src/enclavefl/__init__.pyi
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import enclavefl
from enclavefl.api.public import PUBLIC
from enclavefl.tee.gramine_pkg.tcb import enclave_modules

PACKAGE_DIR = Path(enclavefl.__file__).parent
DOCS = PACKAGE_DIR.parents[1] / "docs" / "api.md"
PUBLIC_MODULES = {"enclavefl", "enclavefl.errors"}
SUBPACKAGES = {p.stem for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}


def stub_text() -> str:
    """`enclavefl/__init__.pyi`: each public name imported from its module with an explicit re-export."""
    lines = [
        "# Generated from enclavefl/api/public.py (the one table of public names) by tests/api/test_public_names.py:",
        "#     .venv/bin/python tests/api/test_public_names.py > src/enclavefl/__init__.pyi",
        "# mypy reads the names' types here; at run time enclavefl/__init__.py imports each on first use.",
        "",
    ]
    sources = []
    for name, module in PUBLIC.items():
        parent, _, last = module.rpartition(".")
        sources.append((parent, name) if last == name else (module, name))  # a public submodule: enclavefl.errors
    lines += [f"from {module} import {name} as {name}" for module, name in sorted(sources)]
    lines += ["", "__all__ = ["] + [f'    "{name}",' for name in sorted(PUBLIC)] + ["]", ""]
    return "\n".join(lines)


def documented_names() -> list[str]:
    """The names in docs/api.md's table of parties (`| party | names |`)."""
    table = DOCS.read_text().split("| party | names |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"`([A-Za-z_]+)`", table)


def test_the_type_stub_is_generated_from_the_table() -> None:
    assert (PACKAGE_DIR / "__init__.pyi").read_text() == stub_text(), (
        "regenerate: .venv/bin/python tests/api/test_public_names.py > src/enclavefl/__init__.pyi"
    )


def test_all_is_sorted_and_the_documented_list() -> None:
    assert enclavefl.__all__ == sorted(enclavefl.__all__)
    assert enclavefl.__all__ == sorted(documented_names())
    assert sorted(enclavefl.__all__) == sorted(set(enclavefl.__all__))


def test_every_public_name_resolves_to_a_public_module() -> None:
    shown = {}
    for name in enclavefl.__all__:
        value = getattr(enclavefl, name)
        shown[name] = value.__name__ if name == "errors" else value.__module__
    internal = {name: module for name, module in shown.items() if module not in PUBLIC_MODULES}
    assert internal == {}
    assert enclavefl.JobSpec.__module__ == "enclavefl"
    assert enclavefl.make_job.__module__ == "enclavefl"
    assert enclavefl.EnclaveFLError.__module__ == "enclavefl.errors"


def test_the_package_docstring_names_every_public_name() -> None:
    doc = enclavefl.__doc__ or ""
    assert [name for name in enclavefl.__all__ if not re.search(rf"\b{name}\b", doc)] == []


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    try:
        enclavefl.build_job  # type: ignore[attr-defined]  # the second builder went (make_job is the one)
    except AttributeError as exc:
        assert str(exc) == "module 'enclavefl' has no attribute 'build_job'"
    else:
        raise AssertionError("enclavefl.build_job resolved")
    assert "JobSpec" in dir(enclavefl)


def test_import_enclavefl_loads_no_public_module() -> None:
    # a fresh interpreter: the enclave imports enclavefl.* modules, so the package itself must load nothing
    code = "import sys, enclavefl; print(sorted(m for m in sys.modules if m.startswith('enclavefl')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "['enclavefl']"


def test_the_enclave_never_asks_the_package_for_a_public_name() -> None:
    # the table is outside the enclave's closure (enclavefl/__init__.py imports it by name): no enclave module
    # may reach it, neither by `from enclavefl import <name>` nor by `enclavefl.<name>`
    asks = []
    for module in enclave_modules():
        tree = ast.parse((PACKAGE_DIR / module.path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "enclavefl" and node.level == 0:
                asks += [
                    f"{module.path}: from enclavefl import {a.name}" for a in node.names if a.name not in SUBPACKAGES
                ]
            if isinstance(node, ast.Import) and any(a.name == "enclavefl" for a in node.names):
                asks.append(f"{module.path}: import enclavefl")
    assert asks == []


@pytest.mark.slow
def test_importing_the_enclave_closure_loads_no_public_table() -> None:
    names = [m.name for m in enclave_modules()]
    code = (
        f"import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\nprint('enclavefl.api' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "False"


if __name__ == "__main__":
    sys.stdout.write(stub_text())
