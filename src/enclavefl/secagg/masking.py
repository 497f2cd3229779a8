"""The data owner's side of masked mode: keys, shares, the masked update, and the one unmasking answer.

    session = MaskingSession(owner="alice", spec=job.secure_aggregation, context=graph_seed(...))
    relay.advertise(session.advertisement())
    relay.send(session.share_bundles(relay.roster()))          # after every owner advertised
    session.receive_bundles(relay.bundles_for("alice"))
    session.mask_inplace(encoded)                               # encoded: FixedPoint.encode(clipped delta)
    relay.upload(encoded)
    relay.unmask(session.unmask_shares(relay.survivors()))     # once per round, whatever the relay asks

The masked update is x + PRG(b) + sum over neighbours v of ±PRG(s_uv), modulo 2^bits (+ when u < v by
name, - otherwise, so each pair cancels in the sum). The owner answers the unmasking request once, and for
each of its share holders' subjects reveals either the self-mask share (the subject survived) or the mask key
share (it dropped out), never both: the relay cannot learn both of one owner's seeds from an honest holder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.errors import SecureAggregationViolation
from enclavefl.secagg import shamir
from enclavefl.secagg.graph import harary_neighbours, holders_of, pair_sign
from enclavefl.secagg.keys import RoundKeys, pairwise_seed, private_bytes, public_bytes, share_cipher
from enclavefl.secagg.messages import NONCE_BYTES, SHARE_WIRE_BYTES, KeyAdvertisement, ShareBundle, UnmaskShares
from enclavefl.secagg.prg import add_masks_inplace


class MaskingSession:
    """One owner's masked-mode state for one round (fresh keys every round; nothing is stored on disk)."""

    def __init__(
        self,
        *,
        owner: str,
        spec: SecureAggregationSpec,
        context: bytes,
        min_survivors: int = 1,
        keys: RoundKeys | None = None,
    ) -> None:
        self.owner = owner
        self.min_survivors = max(min_survivors, spec.threshold)  # the job's K: never unmask a smaller sum
        self.spec = spec
        self.context = context
        self._keys = keys or RoundKeys.generate()
        self._roster: dict[str, KeyAdvertisement] = {}
        self._neighbours: Mapping[str, tuple[str, ...]] = {}
        self._own_shares: tuple[bytes, bytes] | None = None  # this owner's share of its own two seeds
        self._held: dict[str, tuple[bytes, bytes]] = {}  # subject -> (self-mask share, mask key share)
        self._answered = False

    def advertisement(self) -> KeyAdvertisement:
        return KeyAdvertisement(
            owner=self.owner,
            cipher_public=public_bytes(self._keys.cipher_private),
            mask_public=public_bytes(self._keys.mask_private),
            self_mask_hash=hashlib.sha256(self._keys.self_mask_seed).digest(),
        )

    def share_bundles(self, roster: Sequence[KeyAdvertisement]) -> list[ShareBundle]:
        """Shamir-share both seeds among this owner's holders; one encrypted bundle per neighbour."""
        names = [ad.owner for ad in roster]
        if len(set(names)) != len(names):
            raise SecureAggregationViolation("the roster names an owner twice")
        self._roster = {ad.owner: ad for ad in roster}
        if self._roster.get(self.owner) != self.advertisement():
            raise SecureAggregationViolation(f"the roster does not carry {self.owner!r}'s own keys")
        self._neighbours = harary_neighbours(names, degree=self.spec.degree, seed=self.context)
        holders = holders_of(self.owner, self._neighbours)
        if len(holders) < self.spec.threshold:
            raise SecureAggregationViolation(
                f"only {len(holders)} share holders for threshold {self.spec.threshold}: too few owners advertised"
            )
        kwargs = {"holders": len(holders), "threshold": self.spec.threshold}
        self_mask = shamir.split(self._keys.self_mask_seed, **kwargs)
        mask_key = shamir.split(private_bytes(self._keys.mask_private), **kwargs)
        bundles = []
        for index, holder in enumerate(holders):
            pair = (self_mask[index].to_bytes(), mask_key[index].to_bytes())
            if holder == self.owner:
                self._own_shares = pair
                continue
            box, aad = share_cipher(
                self._keys.cipher_private,
                self._roster[holder].cipher_public,
                context=self.context,
                sender=self.owner,
                recipient=holder,
            )
            nonce = os.urandom(NONCE_BYTES)
            bundles.append(
                ShareBundle(
                    sender=self.owner, recipient=holder, ciphertext=nonce + box.encrypt(nonce, pair[0] + pair[1], aad)
                )
            )
        return bundles

    def receive_bundles(self, bundles: Sequence[ShareBundle]) -> None:
        """Open the neighbours' bundles; the senders are the owners this one masks with."""
        if self._own_shares is None:
            raise SecureAggregationViolation("bundles arrived before this owner shared its own seeds")
        for bundle in bundles:
            if bundle.recipient != self.owner or bundle.sender not in self._neighbours[self.owner]:
                raise SecureAggregationViolation(f"a bundle from {bundle.sender!r} is not for {self.owner!r}")
            if bundle.sender in self._held:
                raise SecureAggregationViolation(f"two bundles from {bundle.sender!r}")
            box, aad = share_cipher(
                self._keys.cipher_private,
                self._roster[bundle.sender].cipher_public,
                context=self.context,
                sender=bundle.sender,
                recipient=self.owner,
            )
            nonce, sealed = bundle.ciphertext[:NONCE_BYTES], bundle.ciphertext[NONCE_BYTES:]
            try:
                plain = box.decrypt(nonce, sealed, aad)
            except Exception:  # cryptography's InvalidTag: forged or for another pair/round
                raise SecureAggregationViolation(f"the bundle from {bundle.sender!r} does not open") from None
            self._held[bundle.sender] = (plain[:SHARE_WIRE_BYTES], plain[SHARE_WIRE_BYTES:])

    @property
    def peers(self) -> tuple[str, ...]:
        """The neighbours whose shares arrived: exactly those this owner masks with."""
        return tuple(sorted(self._held))

    def mask_inplace(self, encoded: npt.NDArray[np.unsignedinteger]) -> None:
        """encoded += PRG(b) + sum of ±PRG(s_uv) over the peers, modulo 2^bits."""
        if self._own_shares is None:
            raise SecureAggregationViolation("masking before the seeds were shared")
        masks = [(self._keys.self_mask_seed, 1)]
        for peer in self.peers:
            seed = pairwise_seed(
                self._keys.mask_private, self._roster[peer].mask_public, context=self.context, pair=(self.owner, peer)
            )
            masks.append((seed, pair_sign(self.owner, peer)))
        add_masks_inplace(encoded, masks)

    def unmask_shares(self, survivors: Collection[str]) -> UnmaskShares:
        """The one answer to the unmasking request: per subject, the self-mask share or the mask key share."""
        if self._answered:
            raise SecureAggregationViolation(f"{self.owner!r} already answered this round's unmasking request")
        survivors = set(survivors)
        if self.owner not in survivors:
            raise SecureAggregationViolation(f"{self.owner!r} uploaded but is not counted as a survivor")
        if not survivors <= set(self._roster):
            raise SecureAggregationViolation("the survivors include owners that never advertised keys")
        if len(survivors) < self.min_survivors:
            raise SecureAggregationViolation(
                f"{len(survivors)} survivor(s), fewer than {self.min_survivors} (the job's K and the threshold): "
                "unmasking so small a sum could expose one owner's update; no answer"
            )
        self._answered = True
        assert self._own_shares is not None
        held = {**self._held, self.owner: self._own_shares}
        self_mask = {s: pair[0] for s, pair in held.items() if s in survivors}
        mask_key = {s: pair[1] for s, pair in held.items() if s not in survivors}  # never its own: it survived
        return UnmaskShares(owner=self.owner, self_mask_shares=self_mask, mask_key_shares=mask_key)
