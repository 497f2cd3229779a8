"""Masked mode over the network: one `Masking` call of an authenticated owner, and the node's phase clock.

    ready, body = masking_step(worker, owner="alice", round_index=3, step="roster", body=b"")
    run_masked_phases(worker, round_index=3, deadline=t, wait=..., now=...)   # the node's round thread

The owner's name is the authenticated session's, never a field of the message: an owner can advertise keys,
send shares and answer only as itself. `ready` is False while the phase a step reads is still open; the owner
asks again. The node closes each phase once every expected owner is through it or at the phase's deadline.
"""

from __future__ import annotations

from collections.abc import Callable

from enclavefl.enclave.worker import SecureWorker
from enclavefl.errors import MaskingRefused
from enclavefl.secagg.wire import (
    decode_advertisements,
    decode_answer,
    decode_bundles,
    encode_advertisements,
    encode_bundles,
    encode_names,
)

# when each phase closes at the latest, as a share of the round deadline: keys (owners may still be starting and
# attesting, as the first upload would in plaintext mode), shares, uploads (training happens here), answers
PHASE_SHARES = (("keys", 0.5), ("shares", 0.625), ("uploads", 0.875), ("answers", 1.0))


def masking_step(worker: SecureWorker, *, owner: str, round_index: int, step: str, body: bytes) -> tuple[bool, bytes]:
    """Run one step for `owner` (authenticated by the transport); (ready, reply body)."""
    if step == "attempt":
        return True, str(worker.masking_attempt(round_index)).encode()
    if step == "advertise":
        ads = decode_advertisements(body)
        if len(ads) != 1 or ads[0].owner != owner:
            raise MaskingRefused(f"{owner!r} may advertise exactly one key set, its own")
        worker.advertise_keys(round_index, ads[0])
        return True, b""
    if step == "roster":
        if not worker.masking_phase_closed(round_index, "keys"):
            return False, b""
        return True, encode_advertisements(worker.masking_roster(round_index))
    if step == "shares":
        worker.submit_share_bundles(round_index, owner, decode_bundles(body))
        return True, b""
    if step == "bundles":
        if not worker.masking_phase_closed(round_index, "shares"):
            return False, b""
        return True, encode_bundles(worker.share_bundles_for(round_index, owner))
    if step == "survivors":
        if not worker.masking_phase_closed(round_index, "uploads"):
            return False, b""
        return True, encode_names(worker.unmasking_survivors(round_index))
    if step == "unmask":
        answer = decode_answer(body)
        if answer.owner != owner:
            raise MaskingRefused(f"{owner!r} may answer only for itself")
        worker.submit_unmask_shares(round_index, answer)
        return True, b""
    raise MaskingRefused(f"unknown masked-mode step {step!r}")


def run_masked_phases(
    worker: SecureWorker,
    *,
    round_index: int,
    opened: float,
    duration: float,
    wait: Callable[[float], None],
    now: Callable[[], float],
    stopped: Callable[[], bool],
) -> None:
    """Close keys, shares and uploads in turn, then wait for the answers; NotEnoughContributions below K."""
    for phase, share in PHASE_SHARES:
        phase_deadline = opened + duration * share
        while not stopped():
            current, through, expected = worker.masking_waiting_for(round_index)
            if current != phase or through >= expected or now() >= phase_deadline:
                break
            wait(max(0.0, phase_deadline - now()))
        if stopped():
            return
        if phase != "answers":
            worker.close_masking_phase(round_index, phase)
