"""PyTorch is an extra (`enclavefl[torch]`): every public name imports without it, and a name that needs it says so
in one line when it is used.

    require_torch("enclavefl.TorchTask")
    # ModuleNotFoundError: enclavefl.TorchTask needs PyTorch: pip install 'enclavefl[torch]'
"""

from __future__ import annotations

from typing import Any

TORCH_EXTRA = "pip install 'enclavefl[torch]'"


def require_torch(what: str) -> None:
    """Import torch, or raise ModuleNotFoundError naming `what` and the extra (a broken torch raises as it is)."""
    try:
        import torch  # noqa: F401  # imported for its presence: the caller uses it next
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "torch":
            raise  # torch is there but something it needs is not: its own message says what
        raise ModuleNotFoundError(f"{what} needs PyTorch: {TORCH_EXTRA}", name="torch") from None


def torch_only_class(qualname: str, doc: str) -> type:
    """A stand-in for a class that subclasses a torch type, for an interpreter without torch: it shows `doc` in
    `help()` and raises require_torch's one-line error when constructed (the real class cannot exist without torch)."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        require_torch(qualname)
        raise AssertionError("unreachable: torch is missing, or the real class would have been returned")

    return type(
        qualname.rpartition(".")[2], (), {"__doc__": f"{doc}\n\nNeeds PyTorch: {TORCH_EXTRA}.", "__init__": __init__}
    )
