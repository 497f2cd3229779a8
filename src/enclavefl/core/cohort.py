"""Per-round cohorts: a job enrols N data owners and each round takes M of them, drawn inside the enclave.

    count, fraction = cohort_form("10%")                                              # (None, 0.1)
    size = cohort_size(clients_per_round=20, fraction_per_round=None, owners=1000)     # 20 (None: no cohort)
    check_cohort_claim(receipt, size=20, token=status.cohort_token, member=True)   # a data owner, before signing

The enclave draws each round's cohort (enclave/cohort.py) and gives every enrolled owner, over its authenticated
channel, a per-round token and whether it is in the cohort. The round's receipt lists `member_commitment` of each
member's token, sorted: an outsider sees M opaque hashes, never names, and each owner checks its own entry
(present exactly when it was told it is a member). docs/threat-model.md ("Cohorts") says why the draw cannot be
steered by the host.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections.abc import Sequence
from fractions import Fraction

from enclavefl.errors import CohortMismatch, JobSpecError

MEMBER_DOMAIN = b"enclavefl/cohort-member/v1\x00"
TOKEN_BYTES = 32


def cohort_size(*, clients_per_round: int | None, fraction_per_round: float | None, owners: int) -> int | None:
    """Owners per round (M) from the job's one form; None when the job has no cohort (every owner, every round)."""
    if clients_per_round is not None:
        return clients_per_round
    if fraction_per_round is not None:
        # Fraction of the decimal text: 0.1 x 30 is 3, where float arithmetic gives 3.0000000000000004 -> 4
        return max(1, math.ceil(Fraction(repr(fraction_per_round)) * owners))
    return None


def cohort_form(clients_per_round: int | float | str | None) -> tuple[int | None, float | None]:
    """The job's (clients_per_round, fraction_per_round) for one `clients_per_round` value of the API or the CLI:
    an integer is a count of owners per round, a number with a point (or "N%") a fraction of the enrolled ones;
    None: no cohort."""
    value: object = clients_per_round
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text) if "." in text else int(text)
        except ValueError:
            raise JobSpecError(
                f"clients_per_round: {text!r} is neither a count (20) nor a fraction (0.1, 10%)"
            ) from None
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"clients_per_round: a count or a fraction, got {value!r}")
    return (value, None) if isinstance(value, int) else (None, float(value))


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


def check_cohort_claim(
    receipt_cohort: Sequence[bytes] | None,
    *,
    job_digest: bytes,
    round_index: int,
    size: int,
    token: bytes,
    member: bool,
) -> None:
    """CohortMismatch unless the receipt's cohort has the job's size and lists this owner exactly when it was told
    it is a member of round `round_index` (with `token`, from its own status)."""
    if receipt_cohort is None:
        raise CohortMismatch(f"round {round_index}: the job draws cohorts but the receipt commits to none")
    if len(receipt_cohort) != size or len(set(receipt_cohort)) != size:
        raise CohortMismatch(
            f"round {round_index}: the receipt commits to a cohort of {len(set(receipt_cohort))} distinct owner(s), "
            f"the job draws {size}"
        )
    if len(token) != TOKEN_BYTES:
        raise CohortMismatch(f"round {round_index}: the node gave this owner no cohort token for the round")
    mine = member_commitment(job_digest=job_digest, round_index=round_index, token=token)
    listed = any(hmac.compare_digest(mine, c) for c in receipt_cohort)
    if listed != member:
        told, found = ("in", "does not list") if member else ("outside", "lists")
        raise CohortMismatch(
            f"round {round_index}: the node told this owner it is {told} the cohort, but the receipt {found} it"
        )
