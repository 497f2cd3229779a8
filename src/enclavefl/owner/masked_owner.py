"""A data owner in masked mode: the same training, but the enclave only ever receives a masked update.

    masked = MaskedOwner(owner=data_owner, relay=NodeMaskedRelay(node.client, timeout=job.round_deadline_seconds))
    masked.run_round(r)          # advertise, share, upload, unmask: each step waits for the node to close a phase

The update leaves as clip(trained - global, clip_norm), fixed-point encoded and masked (secagg/masking.py). In a DP
job with `secure_aggregation.noise = "skellam"`, the owner adds its share of the round's noise to the encoded update
before masking (privacy/distributed.py), so the sum the enclave unmasks is already private.
Each round's unmasking request is answered once, in any attempt and across node restarts (owner_state.py's
UnmaskRecord, durable beside the receipt memory): an owner that answered round r takes no further part in it, and
a re-attempt of a round this owner uploaded to trains with fresh randomness, so two sums the enclave unmasks never
differ by one owner's update (docs/threat-model.md, "Enclave memory reader").
Clipping happens here because the enclave cannot see one update to clip it: an owner that skips it escapes
the DP bound (docs/threat-model.md, "Masked mode"). No training metrics are sent: they would be per-owner
values in the clear, the very thing masked mode keeps from a broken enclave.
"""

from __future__ import annotations

import secrets

from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import JobSpecError, SecureAggregationViolation
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.masked_remote import NodeMaskedRelay
from enclavefl.owner.owner_state import UnmaskRecord
from enclavefl.privacy.distributed import SkellamSource, add_owner_noise_inplace, owner_variance
from enclavefl.privacy.params import DpParams
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import graph_seed
from enclavefl.secagg.masking import MaskingSession
from enclavefl.secagg.vector import clip_inplace, flat_delta


class MaskedOwner:
    """Drives one DataOwner through the four masked-mode steps of each round."""

    def __init__(
        self,
        *,
        owner: DataOwner,
        relay: NodeMaskedRelay,
        record: UnmaskRecord | None = None,
        noise: SkellamSource | None = None,
    ) -> None:
        """`record`: what this owner uploaded and answered; by default beside its receipt memory (durable with it).
        `noise`: the Skellam source of a job with distributed noise (tests inject a keyed one; default os.urandom)."""
        spec = owner.job.secure_aggregation
        if spec is None or not spec.enabled:
            raise JobSpecError(f"job {owner.job.name!r} is not masked")
        self.owner = owner
        self.relay = relay
        self.spec = spec
        self.codec = FixedPoint(scale=spec.scale, bits=spec.modulus_bits)
        self._sessions: dict[int, MaskingSession] = {}
        self._attempts: dict[int, int] = {}  # the opening of each round this owner's session belongs to
        self._contexts_used: set[bytes] = set()
        self.clipped_rounds: list[int] = []
        self.record = record or UnmaskRecord.beside(owner.chain.tracker, job_digest=owner.job.digest())
        self._owner_noise, self._owner_variance = self._distributed_noise(noise)

    def _distributed_noise(self, source: SkellamSource | None) -> tuple[SkellamSource | None, float]:
        """(source, variance per coordinate) of this owner's Skellam share, or (None, 0) without distributed noise."""
        job = self.owner.job
        if not self.spec.distributed_noise:
            return None, 0.0
        if job.dp is None:
            raise JobSpecError("secure_aggregation.noise = 'skellam' needs a [dp] table")
        params = DpParams.from_mapping(job.dp)
        variance = owner_variance(
            noise_multiplier=params.noise_multiplier,
            dp_clip=params.clip_norm,
            scale=self.spec.scale,
            min_contributors=job.min_contributions,
        )
        return (source or SkellamSource.from_urandom()), variance

    @property
    def name(self) -> str:
        return self.owner.name

    def advertise(self, round_index: int) -> None:
        """Fresh keys for this opening of the round, advertised through the relay (UnmaskAlreadyAnswered if this
        owner answered the round's unmasking before: it takes no further part in the round)."""
        self.record.check_may_take_part(round_index)
        attempt = self.relay.masking_attempt(round_index)
        context = graph_seed(job_digest=self.owner.job.digest(), round_index=round_index, attempt=attempt)
        if context in self._contexts_used:  # a replayed opening would reuse a graph; keys are fresh regardless
            raise SecureAggregationViolation(f"round {round_index} attempt {attempt} was already masked by this owner")
        self._contexts_used.add(context)
        session = MaskingSession(
            owner=self.name, spec=self.spec, context=context, min_survivors=self.owner.job.min_contributions
        )
        self._sessions[round_index] = session
        self._attempts[round_index] = attempt
        self.relay.advertise_keys(round_index, session.advertisement())

    def share(self, round_index: int) -> None:
        session = self._session(round_index)
        self.relay.submit_share_bundles(
            round_index,
            self.name,
            session.share_bundles(self.relay.masking_roster(round_index, self._attempts[round_index])),
        )

    def upload(self, round_index: int) -> None:
        """Train, clip, encode, mask and upload; the commitment goes on record like a plaintext upload's."""
        session = self._session(round_index)
        session.receive_bundles(self.relay.share_bundles_for(round_index, self.name, self._attempts[round_index]))
        # A second upload to this round (a re-attempt, or a node restarted from an earlier checkpoint) trains with
        # fresh randomness: the same seed would give the same update, and two sums would cancel everything else.
        seed = secrets.randbits(63) if self.record.record_upload(round_index) else None
        global_weights, _ = self.owner.train_local(round_index, seed=seed)
        delta = flat_delta(weights_from_module(self.owner.model), global_weights)
        if clip_inplace(delta, self.spec.clip_norm):
            self.clipped_rounds.append(round_index)
        encoded = self.codec.encode(delta)
        if self._owner_noise is not None:  # this owner's share of the round's DP noise, before the mask
            add_owner_noise_inplace(encoded, source=self._owner_noise, variance=self._owner_variance)
        session.mask_inplace(encoded)
        payload = encoded.astype(encoded.dtype.newbyteorder("<"), copy=False).tobytes()
        self.owner.chain.forget_upload(round_index)
        message = UpdateMessage.of(
            owner=self.name, round=round_index, num_examples=1, payload=payload, salts=self.owner.salts
        )
        self.owner.send_update(message, self.relay.upload)  # its commitment goes on record like a plaintext one's

    def unmask(self, round_index: int) -> None:
        """The one answer to the round's unmasking request, on record (durably) before it leaves."""
        session = self._session(round_index)
        answer = session.unmask_shares(self.relay.unmasking_survivors(round_index, self._attempts[round_index]))
        self.record.record_answer(round_index)
        self.relay.submit_unmask_shares(round_index, answer)

    def run_round(self, round_index: int) -> None:
        """All four steps in order, for a relay that waits for each phase to close (the gRPC relay does)."""
        self.advertise(round_index)
        self.share(round_index)
        self.upload(round_index)
        self.unmask(round_index)

    def _session(self, round_index: int) -> MaskingSession:
        session = self._sessions.get(round_index)
        if session is None:
            raise SecureAggregationViolation(f"round {round_index}: this owner advertised no keys")
        return session
