"""One masked-mode round in process: every owner's four steps in phase order, with optional dropouts.

    masked_round(worker, owners, round_index, absent={"carol": "upload"})   # carol vanishes before uploading

`absent` maps an owner to the first step it misses ("advertise", "share", "upload", "unmask"): the tests use it
to drop owners before masking (no share, no upload) and after masking (uploaded, no unmask answer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import EnclaveFLError
from enclavefl.owner.masked_owner import MaskedOwner

log = logging.getLogger(__name__)
STEPS = ("advertise", "share", "upload", "unmask")


def masked_round(
    worker: SecureWorker, owners: Sequence[MaskedOwner], round_index: int, *, absent: Mapping[str, str] | None = None
) -> None:
    """Run the four steps for every present owner; an owner whose step is refused sits out the rest."""
    absent = absent or {}
    unknown = set(absent.values()) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; the steps are {', '.join(STEPS)}")
    active = list(owners)
    for step in STEPS:
        still = []
        for owner in active:
            if absent.get(owner.name) == step:
                log.info("round %d: %s drops out before %s", round_index, owner.name, step)
                continue
            try:
                getattr(owner, step)(round_index)
            except EnclaveFLError as exc:  # refused: the owner sits out, the round goes on with the others
                log.warning("round %d: %s's %s refused: %s: %s", round_index, owner.name, step, type(exc).__name__, exc)
                continue
            still.append(owner)
        active = still
        closes = {"advertise": "keys", "share": "shares", "upload": "uploads"}
        if step in closes:  # the node ends each phase once every present owner is through it
            worker.close_masking_phase(round_index, closes[step])
