"""A masked round among owners in one process, with the relay reduced to dictionaries (for the tests)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np
import numpy.typing as npt

from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import graph_seed, harary_neighbours
from enclavefl.secagg.masking import MaskingSession
from enclavefl.secagg.unmask import recover_sum_inplace

CONTEXT = graph_seed(job_digest=bytes(32), round_index=1, attempt=1)


def masked_round(
    updates: Mapping[str, npt.NDArray[np.float64]],
    *,
    spec: SecureAggregationSpec,
    drop_before_masking: Collection[str] = (),
    drop_after_masking: Collection[str] = (),
) -> npt.NDArray[np.float64]:
    """Run keys, shares, masking and unmasking; return the decoded sum over the owners that uploaded."""
    codec = FixedPoint(scale=spec.scale, bits=spec.modulus_bits)
    sessions = {name: MaskingSession(owner=name, spec=spec, context=CONTEXT) for name in updates}
    roster = [s.advertisement() for s in sessions.values()]
    outbox = {name: s.share_bundles(roster) for name, s in sessions.items() if name not in drop_before_masking}
    for name, session in sessions.items():
        if name not in drop_before_masking:
            session.receive_bundles([b for bundles in outbox.values() for b in bundles if b.recipient == name])
    size = next(iter(updates.values())).size
    total = np.zeros(size, dtype=codec.uint)
    survivors = [n for n in outbox if n not in drop_after_masking]
    for name in survivors:
        encoded = codec.encode(updates[name].reshape(-1))
        sessions[name].mask_inplace(encoded)
        total += encoded
    answers = {name: sessions[name].unmask_shares(survivors) for name in survivors}
    neighbours = harary_neighbours([ad.owner for ad in roster], degree=spec.degree, seed=CONTEXT)
    recover_sum_inplace(
        total,
        roster={ad.owner: ad for ad in roster},
        neighbours=neighbours,
        sharers=outbox,
        survivors=survivors,
        answers=answers,
        threshold=spec.threshold,
        context=CONTEXT,
    )
    return codec.decode(total)
