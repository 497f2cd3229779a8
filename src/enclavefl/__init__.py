"""enclavefl: federated learning whose aggregator runs in an attested SGX enclave; `help(enclavefl)` shows the API.

The API's overview (this package's `__doc__`) is enclavefl/api/overview.py, served on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

# This file runs whenever any enclavefl module is imported, the enclave's included: it holds no names and no
# overview. The one table of public names is enclavefl/api/public.py, imported on first use; mypy reads their
# types from __init__.pyi.


class _Package(types.ModuleType):
    @property
    def __doc__(self) -> str | None:  # type: ignore[override]  # help(enclavefl) reads it: the overview, on first use
        return importlib.import_module("enclavefl.api.overview").__doc__


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """A public name (or `__all__`), imported on first use: `import enclavefl` loads neither torch nor grpc."""
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # a subpackage: `from enclavefl import errors` (enclave code does) asks here first; it needs no table
        return importlib.import_module(f"{__name__}.{name}")
    table = _table()
    value = table.public_names() if name == "__all__" else table.load(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_table().public_names()})


def _table() -> Any:
    # By name, so that `enclavefl enclave tcb` (a static closure) leaves the table out: no enclave module asks this
    # package for a public name (tests/api/test_public_names.py checks), and under Gramine the table is no trusted file.
    return importlib.import_module("enclavefl.api.public")
