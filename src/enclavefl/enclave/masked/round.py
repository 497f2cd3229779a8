"""One masked-mode round inside the enclave: relay keys and shares, sum masked inputs, unmask, release the mean.

    masked = MaskedRound(job=job, global_model=g, context=graph_seed(...), dp=central_dp_or_None)
    masked.advertise(ad); masked.close_keys(); masked.roster()            # phase 1: keys
    masked.submit_bundles(owner, bundles); masked.close_shares()           # phase 2: shares
    masked.bundles_for(owner); masked.fold_masked(owner, payload)          # phase 3: masked inputs, summed mod 2^bits
    masked.close_uploads(); masked.survivors(); masked.submit_answer(a)    # phase 4: unmask shares
    new_global = masked.finalize()        # sealing (enclave/sealing.py): unmask, check the bound, noise, mean

A round's inputs are unmasked at most once: `finalize` tells `on_unmasked` as soon as the plain sum exists, and a
sum that then fails its bound loses the round (MaskedRoundLost), never re-opened by this enclave (enclave/masked/
mode.py). Two unmasked sums of overlapping owner sets would hand a reader of enclave memory their difference: one
owner's update when the host drops it from the second (docs/threat-model.md, "Enclave memory reader").

The node, not the owners, closes each phase (when every owner is in, or at the phase's deadline), so that
one fast owner cannot cut the others out, and every owner is handed the same roster, bundles and survivors.

It stands where a strategy's RoundAggregator stands in the worker (`contributions`, `finalize`), so sealing,
receipts and the two-phase release are the plaintext mode's. What the enclave holds in memory is masked
inputs and their masked sum; it never holds one owner's unmasked update, and it never holds both the self-mask
seed and the mask key of one owner (honest owners reveal one or the other). Not thread-safe: the worker calls
it under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from enclavefl.core.job import JobSpec
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import (
    MaskedRoundLost,
    MaskingRefused,
    NotEnoughContributions,
    NotEnrolled,
    RoundStateError,
)
from enclavefl.privacy import CentralDP
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import harary_neighbours
from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares
from enclavefl.secagg.unmask import recover_sum_inplace
from enclavefl.secagg.vector import add_flat, flat_size


class MaskedRound:
    """The enclave's state for one masked round (see the module docstring for the phase order)."""

    def __init__(
        self,
        *,
        job: JobSpec,
        global_model: ModelWeights,
        context: bytes,
        dp: CentralDP | None,
        on_unmasked: Callable[[], object] = lambda: None,
    ) -> None:
        spec = job.secure_aggregation
        if spec is None or not spec.enabled:
            raise RoundStateError("a masked round for a job without [secure_aggregation]")
        self.spec = spec
        self.context = context
        self._enrolled = {o.name for o in job.data_owners}
        self._min_contributions = job.min_contributions
        self._global = global_model
        self._dp = dp
        if dp is not None:
            dp.accountant.require_budget_for_next_round()  # refuse before any owner spends effort on the round
        self.codec = FixedPoint(scale=spec.scale, bits=spec.modulus_bits)
        self.size = flat_size(global_model)
        self._sum = np.zeros(self.size, dtype=self.codec.uint)
        self._ads: dict[str, KeyAdvertisement] = {}
        self._roster: tuple[KeyAdvertisement, ...] | None = None
        self._neighbours: dict[str, tuple[str, ...]] = {}
        self._bundles: dict[str, tuple[ShareBundle, ...]] = {}
        self._sharers: frozenset[str] | None = None
        self._uploaded: set[str] = set()
        self._survivors: frozenset[str] | None = None
        self._answers: dict[str, UnmaskShares] = {}
        self._finalized = False
        self._on_unmasked = on_unmasked

    # --- phase 1: keys --------------------------------------------------------------------
    def advertise(self, ad: KeyAdvertisement) -> None:
        self._check_enrolled(ad.owner)
        if self._roster is not None:
            raise MaskingRefused(f"{ad.owner!r} advertised keys after the roster was sent out")
        if ad.owner in self._ads:
            raise MaskingRefused(f"{ad.owner!r} already advertised keys for this round")
        self._ads[ad.owner] = ad

    def close_keys(self) -> None:
        """End phase 1 (the node decides when: every owner advertised, or the phase's deadline passed)."""
        if self._roster is not None:
            return
        if len(self._ads) < max(self.spec.threshold, self._min_contributions, 2):
            raise NotEnoughContributions(f"{len(self._ads)} owner(s) advertised keys: too few to mask among")
        self._roster = tuple(self._ads[name] for name in sorted(self._ads))
        self._neighbours = dict(harary_neighbours(list(self._ads), degree=self.spec.degree, seed=self.context))

    def roster(self) -> tuple[KeyAdvertisement, ...]:
        """Every advertisement, in name order: the same list for every owner, once phase 1 is closed."""
        if self._roster is None:
            raise MaskingRefused("the key phase is still open: no roster yet")
        return self._roster

    # --- phase 2: shares ------------------------------------------------------------------
    def submit_bundles(self, owner: str, bundles: Sequence[ShareBundle]) -> None:
        if self._roster is None or owner not in self._neighbours:
            raise MaskingRefused(f"{owner!r} sent shares without being in the roster")
        if self._sharers is not None:
            raise MaskingRefused(f"{owner!r} sent shares after they were handed out")
        if owner in self._bundles:
            raise MaskingRefused(f"{owner!r} already sent its shares")
        recipients = sorted(b.recipient for b in bundles)
        if any(b.sender != owner for b in bundles) or recipients != list(self._neighbours[owner]):
            raise MaskingRefused(f"{owner!r} must send exactly one bundle to each of its neighbours")
        self._bundles[owner] = tuple(bundles)

    def close_shares(self) -> None:
        """End phase 2: the owners that sent their bundles by now are the ones that mask this round."""
        if self._roster is None:
            raise MaskingRefused("the key phase is still open: no shares can have been sent")
        if self._sharers is None:
            self._sharers = frozenset(self._bundles)

    def bundles_for(self, owner: str) -> tuple[ShareBundle, ...]:
        """The bundles addressed to `owner`, once phase 2 is closed."""
        if self._sharers is None:
            raise MaskingRefused("the share phase is still open: no bundles are handed out yet")
        if owner not in self._sharers:
            raise MaskingRefused(f"{owner!r} did not share its seeds in time: it cannot mask this round")
        return tuple(b for sender in sorted(self._sharers) for b in self._bundles[sender] if b.recipient == owner)

    # --- phase 3: masked inputs -----------------------------------------------------------
    @property
    def payload_bytes(self) -> int:
        return self.size * self.codec.bits // 8

    def check_upload(self, owner: str, size: int) -> None:
        """Before reading a masked input: is `owner` expected, once, with this many bytes?"""
        if self._sharers is None or owner not in self._sharers:
            raise MaskingRefused(f"{owner!r} uploads a masked input without having shared its seeds")
        if self._survivors is not None:
            raise MaskingRefused(f"{owner!r} uploads after unmasking began: too late for this round")
        if owner in self._uploaded:
            raise MaskingRefused(f"{owner!r} already uploaded a masked input")
        if size != self.payload_bytes:
            raise MaskingRefused(f"a masked input is {self.payload_bytes} bytes, got {size}")

    def fold_masked(self, owner: str, payload: bytes | memoryview) -> None:
        self.check_upload(owner, len(payload))
        masked = np.frombuffer(payload, dtype=np.dtype(self.codec.uint).newbyteorder("<"))
        np.add(self._sum, masked, out=self._sum)  # modulo 2^bits: unsigned numpy arithmetic wraps
        self._uploaded.add(owner)

    @property
    def contributions(self) -> int:
        return len(self._uploaded)

    # --- phase 4: unmasking ---------------------------------------------------------------
    def close_uploads(self) -> None:
        """End phase 3: the owners whose masked input arrived are the survivors (never fewer than K)."""
        if self._sharers is None:
            raise MaskingRefused("no masked input can have arrived before the shares were exchanged")
        if self._survivors is None:
            if len(self._uploaded) < max(self._min_contributions, self.spec.threshold):
                # Unmasking fewer than K inputs would hand the enclave an (almost) single owner's update.
                raise NotEnoughContributions(
                    f"{len(self._uploaded)} masked input(s) arrived, the job requires at least "
                    f"{self._min_contributions} (and the threshold {self.spec.threshold}): no unmasking"
                )
            self._survivors = frozenset(self._uploaded)

    def survivors(self) -> tuple[str, ...]:
        """The owners whose masked input arrived, once phase 3 is closed (what each survivor answers about)."""
        if self._survivors is None:
            raise MaskingRefused("the upload phase is still open: no unmasking request yet")
        return tuple(sorted(self._survivors))

    def submit_answer(self, answer: UnmaskShares) -> None:
        if self._survivors is None or answer.owner not in self._survivors:
            raise MaskingRefused(f"{answer.owner!r} sent unmask shares but is not a survivor")
        if answer.owner in self._answers:
            raise MaskingRefused(f"{answer.owner!r} already sent its unmask shares")
        subjects = {*answer.self_mask_shares, *answer.mask_key_shares}
        if not subjects <= {*self._neighbours[answer.owner], answer.owner}:
            raise MaskingRefused(f"{answer.owner!r} sent shares of owners it does not hold shares of")
        if set(answer.self_mask_shares) - self._survivors or set(answer.mask_key_shares) & self._survivors:
            raise MaskingRefused(f"{answer.owner!r}: self-mask shares are for survivors, mask keys for dropouts")
        self._answers[answer.owner] = answer

    def finalize(self) -> ModelWeights:
        """Unmask the sum, check its bound, add the DP noise, and return global + sum / n (the round's model)."""
        if self._finalized:
            raise RoundStateError("masked round already finalized")
        self.close_uploads()
        survivors = frozenset(self.survivors())
        assert self._sharers is not None
        recover_sum_inplace(
            self._sum,
            roster={ad.owner: ad for ad in self._roster or ()},
            neighbours=self._neighbours,
            sharers=self._sharers,
            survivors=survivors,
            answers=self._answers,
            threshold=self.spec.threshold,
            context=self.context,
        )
        self._finalized = True
        self._on_unmasked()  # the plain sum exists from here on: this round is released now or lost
        total = self.codec.decode(self._sum)
        count = len(survivors)
        # Each honest owner clipped to clip_norm, so |sum| <= n C (+ rounding). A wrong seed leaves a uniform
        # mask, whose norm is astronomically larger: a corrupt share or input cannot pass unnoticed.
        bound = count * self.spec.clip_norm + math.sqrt(self.size) * self.codec.sum_error_bound(count)
        bound += self._owner_noise_bound(count)
        norm = float(np.linalg.norm(total))
        if not math.isfinite(norm) or norm > bound:
            raise MaskedRoundLost(
                f"the unmasked sum has norm {norm:.3g}, above {count} x clip_norm (+ rounding) = {bound:.3g}: a share "
                "or a masked input was corrupt, or an owner did not clip; nothing is released, and the round is lost "
                "(its inputs are never unmasked twice)"
            )
        if self._dp is not None:
            if not self.spec.distributed_noise:  # with Skellam, the owners' noise is already in the sum: none here
                self._dp.noise_sum_inplace(total)
            self._dp.accountant.record_round()
        total /= count
        return add_flat(self._global, total)

    def _owner_noise_bound(self, count: int) -> float:
        """With distributed noise, the norm the owners' Skellam noise may add: `count` shares of variance
        (sigma C)^2 / K per coordinate, bounded by std * (sqrt(d) + 20) (exceeded with probability < e^-200)."""
        if self._dp is None or not self.spec.distributed_noise:
            return 0.0
        std = self._dp.params.noise_std * math.sqrt(count / self._min_contributions)
        return std * (math.sqrt(self.size) + 20.0)

    def closed(self, phase: str) -> bool:
        """Whether the node closed "keys", "shares" or "uploads" (what an owner's next step waits for)."""
        marks = {"keys": self._roster, "shares": self._sharers, "uploads": self._survivors}
        return marks[phase] is not None

    def waiting_for(self) -> tuple[str, int, int]:
        """The open phase, how many owners are through it and how many are expected (for the node's loop)."""
        if self._roster is None:
            return "keys", len(self._ads), len(self._enrolled) or len(self._ads)
        if self._sharers is None:
            return "shares", len(self._bundles), len(self._roster)
        if self._survivors is None:
            return "uploads", len(self._uploaded), len(self._sharers)
        return "answers", len(self._answers), len(self._survivors)

    def fold_inplace(self, update: ModelWeights, *, weight: float) -> None:
        raise MaskingRefused("this job is masked: plaintext updates are refused")

    def _check_enrolled(self, owner: str) -> None:
        if self._enrolled and owner not in self._enrolled:
            raise NotEnrolled(f"{owner!r} is not enrolled in this job")
