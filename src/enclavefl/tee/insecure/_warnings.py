"""The warning every insecure TEE stand-in emits when it is constructed."""

from __future__ import annotations

import logging
import warnings

_log = logging.getLogger("enclavefl.tee.insecure")


class InsecureSimulationWarning(UserWarning):
    """Evidence from this backend proves nothing: no hardware protects the code or its secrets."""


def warn_insecure(what: str) -> None:
    """Say loudly, as a warning and a WARNING log line, that `what` is insecure."""
    message = (
        f"{what} is INSECURE: a simulated enclave on an ordinary process; its attestation proves "
        "nothing and its sealing keys live in a local directory. Development and tests only."
    )
    warnings.warn(message, InsecureSimulationWarning, stacklevel=3)
    _log.warning(message)
