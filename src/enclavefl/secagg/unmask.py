"""The enclave's side of masked mode: remove the masks that do not cancel, using the survivors' shares.

    recover_sum_inplace(masked_sum, roster=..., neighbours=..., sharers=..., survivors=..., answers=...,
                        threshold=5, context=ctx)

After folding the survivors' masked inputs the sum is
    sum_{u in U3} x_u + sum_{u in U3} PRG(b_u) + sum_{u in U3, v in U2 \\ U3, v ~ u} ±PRG(s_uv)
(pairs of survivors cancel). For each survivor u, `threshold` holders' self-mask shares rebuild b_u; it must
hash to the value u advertised. For each owner v that shared its seeds but did not upload, `threshold`
mask key shares rebuild v's X25519 mask key; its public key must equal the advertised one. Then both kinds of
leftover masks are subtracted. Every shortfall raises UnmaskingFailed: nothing is released.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enclavefl.errors import UnmaskingFailed
from enclavefl.secagg import shamir
from enclavefl.secagg.graph import holders_of, pair_sign
from enclavefl.secagg.keys import pairwise_seed, public_bytes
from enclavefl.secagg.messages import KeyAdvertisement, UnmaskShares
from enclavefl.secagg.prg import add_masks_inplace


def recover_sum_inplace(
    masked_sum: npt.NDArray[np.unsignedinteger],
    *,
    roster: Mapping[str, KeyAdvertisement],
    neighbours: Mapping[str, tuple[str, ...]],
    sharers: Collection[str],
    survivors: Collection[str],
    answers: Mapping[str, UnmaskShares],
    threshold: int,
    context: bytes,
) -> None:
    """Turn the sum of the survivors' masked inputs into the sum of their encoded updates, in place."""
    survivors, sharers = set(survivors), set(sharers)
    masks: list[tuple[bytes, int]] = []  # every leftover mask, removed in one pass over the sum
    for owner in sorted(survivors):
        seed = _rebuild(owner, "self-mask", answers, neighbours, threshold)
        if hashlib.sha256(seed).digest() != roster[owner].self_mask_hash:
            raise UnmaskingFailed(f"{owner!r}'s self-mask seed rebuilt from shares does not match its advertisement")
        masks.append((seed, -1))
    for dropped in sorted(sharers - survivors):
        key = X25519PrivateKey.from_private_bytes(_rebuild(dropped, "mask-key", answers, neighbours, threshold))
        if public_bytes(key) != roster[dropped].mask_public:
            raise UnmaskingFailed(f"{dropped!r}'s mask key rebuilt from shares does not match its advertisement")
        for peer in neighbours[dropped]:
            if peer in survivors:  # the survivor masked with `dropped`: take its half of the pair back out
                seed = pairwise_seed(key, roster[peer].mask_public, context=context, pair=(dropped, peer))
                masks.append((seed, -pair_sign(peer, dropped)))
    add_masks_inplace(masked_sum, masks)


def _rebuild(
    subject: str,
    kind: str,
    answers: Mapping[str, UnmaskShares],
    neighbours: Mapping[str, tuple[str, ...]],
    threshold: int,
) -> bytes:
    holders = holders_of(subject, neighbours)
    shares: list[shamir.Share] = []
    for index, holder in enumerate(holders):
        answer = answers.get(holder)
        if answer is None:
            continue
        raw = (answer.self_mask_shares if kind == "self-mask" else answer.mask_key_shares).get(subject)
        if raw is None:
            continue
        try:
            share = shamir.Share.from_bytes(raw)
        except ValueError as exc:
            raise UnmaskingFailed(f"{holder!r} sent a malformed {kind} share of {subject!r}: {exc}") from None
        if share.x != index + 1:  # a holder's x-coordinate is fixed by the graph: no one answers for another
            raise UnmaskingFailed(f"{holder!r} sent a {kind} share of {subject!r} under another holder's index")
        shares.append(share)
        if len(shares) == threshold:
            try:
                return shamir.reconstruct(shares)
            except ValueError as exc:
                raise UnmaskingFailed(f"the {kind} seed of {subject!r} does not rebuild: {exc}") from None
    raise UnmaskingFailed(
        f"only {len(shares)} {kind} share(s) of {subject!r} arrived, the threshold is {threshold}: "
        "too many of its neighbours dropped out; nothing is released"
    )
