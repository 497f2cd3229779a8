"""Per-round cohorts: a job enrols N data owners and each round takes M of them, drawn inside the enclave.

    size = cohort_size(clients_per_round=20, fraction_per_round=None, owners=1000)     # 20 (None: no cohort)
    member_commitment(job_digest=d, round_index=3, token=token)   # what round 3's receipt lists for one member

The enclave draws each round's cohort (enclave/cohort.py) and gives every enrolled owner, over its authenticated
channel, a per-round token and whether it is in the cohort. The round's receipt lists `member_commitment` of each
member's token, sorted: an outsider sees M opaque hashes, never names, and each owner checks its own entry
(present exactly when it was told it is a member: core/receipt_checks.py check_cohort_claim; the enclave never
runs that check, so it stays out of its TCB). docs/threat-model.md ("Cohorts") says why the draw cannot be
steered by the host.
"""

from __future__ import annotations

import hashlib
import math
import struct
from fractions import Fraction

from enclavefl.errors import JobSpecError

MEMBER_DOMAIN = b"enclavefl/cohort-member/v1\x00"


def cohort_size(*, clients_per_round: int | None, fraction_per_round: float | None, owners: int) -> int | None:
    """Owners per round (M) from the job's one form; None when the job has no cohort (every owner, every round)."""
    if clients_per_round is not None:
        return clients_per_round
    if fraction_per_round is not None:
        # Fraction of the decimal text: 0.1 x 30 is 3, where float arithmetic gives 3.0000000000000004 -> 4
        return max(1, math.ceil(Fraction(repr(fraction_per_round)) * owners))
    return None


def check_cohort_fields(
    *, clients_per_round: object, fraction_per_round: object, owners: int, min_contributions: int, masked: bool
) -> None:
    """JobSpecError unless the job asks for a cohort in at most one form that its owners and K can fill."""
    if clients_per_round is None and fraction_per_round is None:
        return
    if clients_per_round is not None and fraction_per_round is not None:
        raise JobSpecError("clients_per_round, fraction_per_round: set one form of the cohort size, not both")
    if clients_per_round is not None and (
        isinstance(clients_per_round, bool) or not isinstance(clients_per_round, int) or clients_per_round < 1
    ):
        raise JobSpecError(f"clients_per_round: must be a positive integer, got {clients_per_round!r}")
    if fraction_per_round is not None and (
        isinstance(fraction_per_round, bool)
        or not isinstance(fraction_per_round, int | float)
        or not 0 < fraction_per_round <= 1
    ):
        raise JobSpecError(f"fraction_per_round: must be a number in (0, 1], got {fraction_per_round!r}")
    if owners < 1:
        raise JobSpecError("clients_per_round: a cohort is drawn from enrolled data owners; the job enrols none")
    if masked:
        raise JobSpecError("clients_per_round: cohorts are not available with secure_aggregation (masked mode) yet")
    count = clients_per_round if isinstance(clients_per_round, int) else None
    fraction = float(fraction_per_round) if isinstance(fraction_per_round, int | float) else None
    size = cohort_size(clients_per_round=count, fraction_per_round=fraction, owners=owners) or 0
    if size > owners:
        raise JobSpecError(f"clients_per_round: {size} per round exceeds the {owners} enrolled data owners")
    if min_contributions > size:
        raise JobSpecError(
            f"min_contributions: K = {min_contributions} exceeds the cohort of {size} owners per round: "
            "no round could release"
        )


def member_commitment(*, job_digest: bytes, round_index: int, token: bytes) -> bytes:
    """What a round's receipt lists for one cohort member: a hash of the token only that member was given."""
    return hashlib.sha256(MEMBER_DOMAIN + job_digest + struct.pack(">Q", round_index) + token).digest()
