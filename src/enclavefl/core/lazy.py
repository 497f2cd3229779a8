"""Public names imported on first use, for the light packages `enclavefl` and `enclavefl.api`.

    _WHERE = {"DataOwnerClient": "enclavefl.api.data_owner", ...}
    def __getattr__(name: str) -> Any:
        return load_lazily(__name__, _WHERE, globals(), name)

so `import enclavefl` does not import torch or grpc; mypy sees the names through TYPE_CHECKING imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping
from typing import Any


def load_lazily(package: str, where: Mapping[str, str], namespace: MutableMapping[str, Any], name: str) -> Any:
    """`name` from the module `where` maps it to, cached in the package's namespace; AttributeError if unknown."""
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
