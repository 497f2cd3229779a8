"""Masked mode as the worker holds it: `worker.masked`, the one door to the open round's MaskedRound.

    worker.masked.advertise(r, ad); worker.masked.close_phase(r, "keys"); worker.masked.roster(r)
    worker.masked.submit(update)                          # a masked input: little-endian integers modulo 2^bits
    ready, body = worker.masked.step("alice", r, "roster", b"1")   # one `Masking` call of an authenticated owner
    worker.masked.run_phases(r, opened=t, duration=d, ...)          # the node's round thread: the phase clock

Every method takes the worker's lock and finds the open round (WrongRound when `r` is not it). The worker seals a
masked round like any other: MaskedRound stands where a strategy's RoundAggregator stands.

Over a transport, the owner's name is the authenticated session's, never a field of the message: an owner can
advertise keys, send shares and answer only as itself. `ready` is False while the phase a step reads is still
open; the owner asks again. The node closes each phase once every expected owner is through it or at the phase's
deadline. The reads ("roster", "bundles", "survivors") carry the attempt the owner is in as their body: an owner
left in a failed opening of the round is refused at once instead of being answered from the next opening.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from enclavefl.aggregation import AggregationStrategy
from enclavefl.core.commitments import check_commitment
from enclavefl.core.job import JobSpec
from enclavefl.core.update import IncomingUpdate
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.masked.round import MaskedRound
from enclavefl.enclave.round_state import OpenRound
from enclavefl.errors import MaskedRoundLost, MaskingRefused, NotEnoughContributions, NotEnrolled, UpdateRejected
from enclavefl.privacy import CentralDP
from enclavefl.secagg.graph import graph_seed
from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares
from enclavefl.secagg.wire import (
    decode_advertisements,
    decode_answer,
    decode_bundles,
    encode_advertisements,
    encode_bundles,
    encode_names,
)

PHASES = ("keys", "shares", "uploads")
# when each phase closes at the latest, as a share of the round deadline: keys (owners may still be starting and
# attesting, as the first upload would in plaintext mode), shares, uploads (training happens here), answers
PHASE_SHARES = (("keys", 0.5), ("shares", 0.625), ("uploads", 0.875), ("answers", 1.0))


class RoundHost(Protocol):
    """What masked mode needs of the worker that holds it (enclave/worker.py's SecureWorker)."""

    job: JobSpec
    strategy: AggregationStrategy

    @property
    def lock(self) -> threading.Lock: ...

    def open_round_state(self, round_index: int, what: str = ...) -> OpenRound: ...

    def drop_open_round(self) -> None: ...

    def count_rejection(self, sender: str, exc: UpdateRejected) -> NoReturn: ...


class MaskedMode:
    """The enclave's side of the four masked-mode steps, over the worker's open round."""

    def __init__(self, host: RoundHost) -> None:
        self._host = host
        self._job = host.job
        self._job_digest = host.job.digest()
        self._enrolled = {o.name for o in host.job.data_owners}
        self._unmasked: set[int] = set()  # rounds whose sum this enclave unmasked: never opened again

    def start_round(self, global_model: ModelWeights, round_index: int, attempt: int) -> MaskedRound:
        """The aggregator of a masked round; its graph seed binds job, round and attempt.

        MaskedRoundLost if this enclave already unmasked a sum of this round: a second sum (the host dropping
        one owner from it) would differ from the first by that owner's update. A restarted enclave forgets; the
        owners do not (each refuses, from its durable record, a round whose unmasking it answered).
        """
        if round_index in self._unmasked:
            raise MaskedRoundLost(f"round {round_index}'s inputs were unmasked once already: it is never re-opened")
        context = graph_seed(job_digest=self._job_digest, round_index=round_index, attempt=attempt)
        dp = self._host.strategy if isinstance(self._host.strategy, CentralDP) else None
        return MaskedRound(
            job=self._job,
            global_model=global_model,
            context=context,
            dp=dp,
            on_unmasked=lambda: self._unmasked.add(round_index),
        )

    def _round(self, round_index: int) -> MaskedRound:
        """The open masked round (call under the lock); WrongRound when `round_index` is not open."""
        aggregator = self._host.open_round_state(round_index, "masked-mode message").aggregator
        assert isinstance(aggregator, MaskedRound)  # a masked job's every round is masked
        return aggregator

    def attempt(self, round_index: int) -> int:
        """Which opening of the round this is: owners derive the round's graph seed from job, round and attempt."""
        with self._host.lock:
            return self._host.open_round_state(round_index, "masked-mode message").attempt

    def advertise(self, round_index: int, ad: KeyAdvertisement) -> None:
        with self._host.lock:
            self._round(round_index).advertise(ad)

    def close_phase(self, round_index: int, phase: str) -> None:
        """The node ends a phase: "keys", "shares" or "uploads" (NotEnoughContributions below K: round dropped)."""
        if phase not in PHASES:
            raise ValueError(f"unknown masked-mode phase {phase!r}; the phases are {', '.join(PHASES)}")
        with self._host.lock:
            masked = self._round(round_index)
            try:
                {"keys": masked.close_keys, "shares": masked.close_shares, "uploads": masked.close_uploads}[phase]()
            except NotEnoughContributions:  # too few owners got through: the round is lost, as at close_round
                self._host.drop_open_round()
                raise

    def phase_closed(self, round_index: int, phase: str) -> bool:
        with self._host.lock:
            return self._round(round_index).closed(phase)

    def waiting_for(self, round_index: int) -> tuple[str, int, int]:
        """(open phase, owners through it, owners expected): what the node's round loop waits on."""
        with self._host.lock:
            return self._round(round_index).waiting_for()

    def roster(self, round_index: int) -> tuple[KeyAdvertisement, ...]:
        with self._host.lock:
            return self._round(round_index).roster()

    def submit_bundles(self, round_index: int, owner: str, bundles: Sequence[ShareBundle]) -> None:
        with self._host.lock:
            self._round(round_index).submit_bundles(owner, bundles)

    def bundles_for(self, round_index: int, owner: str) -> tuple[ShareBundle, ...]:
        with self._host.lock:
            return self._round(round_index).bundles_for(owner)

    def survivors(self, round_index: int) -> tuple[str, ...]:
        with self._host.lock:
            return self._round(round_index).survivors()

    def submit_answer(self, round_index: int, answer: UnmaskShares) -> None:
        with self._host.lock:
            self._round(round_index).submit_answer(answer)

    def submit(self, update: IncomingUpdate) -> bytes:
        """Fold one owner's masked input into the round's masked sum; returns its SHA-256 (refusals counted).

        The stream is read up to the expected size, and one byte more to detect an overlong input.
        """
        header = update.header
        try:
            if self._enrolled and header.owner not in self._enrolled:
                raise NotEnrolled(f"{header.owner!r} is not enrolled in job {self._job.name!r}")
            with self._host.lock:
                limit = self._round(header.round).payload_bytes
            payload = _read_at_most(update, limit)
            with self._host.lock:
                self._round(header.round).check_upload(header.owner, len(payload))
            digest = hashlib.sha256(payload).digest()
            check_commitment(salt=header.commitment_salt, payload_sha256=digest, commitment=header.commitment)
            with self._host.lock:
                state = self._host.open_round_state(header.round, "masked input")
                self._round(header.round).fold_masked(header.owner, payload)
                state.record(header.owner, header.commitment)
            return digest
        except UpdateRejected as exc:
            self._host.count_rejection(header.owner, exc)

    def step(self, owner: str, round_index: int, step: str, body: bytes) -> tuple[bool, bytes]:
        """Run one step for `owner` (authenticated by the transport); (ready, reply body)."""
        if step == "attempt":
            return True, str(self.attempt(round_index)).encode()
        if step == "advertise":
            ads = decode_advertisements(body)
            if len(ads) != 1 or ads[0].owner != owner:
                raise MaskingRefused(f"{owner!r} may advertise exactly one key set, its own")
            self.advertise(round_index, ads[0])
            return True, b""
        if step == "shares":
            self.submit_bundles(round_index, owner, decode_bundles(body))
            return True, b""
        if step == "unmask":
            answer = decode_answer(body)
            if answer.owner != owner:
                raise MaskingRefused(f"{owner!r} may answer only for itself")
            self.submit_answer(round_index, answer)
            return True, b""
        reads = {"roster": "keys", "bundles": "shares", "survivors": "uploads"}  # the phase each reply needs closed
        if step not in reads:
            raise MaskingRefused(f"unknown masked-mode step {step!r}")
        self._check_attempt(round_index, body)
        if not self.phase_closed(round_index, reads[step]):
            return False, b""
        if step == "roster":
            return True, encode_advertisements(self.roster(round_index))
        if step == "bundles":
            return True, encode_bundles(self.bundles_for(round_index, owner))
        return True, encode_names(self.survivors(round_index))

    def _check_attempt(self, round_index: int, body: bytes) -> None:
        """A read names the attempt it belongs to: an owner still in an earlier opening of the round is told at
        once (and moves on to the open one) rather than handed this opening's roster, bundles or survivors."""
        open_attempt = self.attempt(round_index)
        if body != str(open_attempt).encode():
            raise MaskingRefused(
                f"round {round_index}: this step names attempt {body[:8].decode(errors='replace')!r}, the open "
                f"attempt is {open_attempt}"
            )

    def run_phases(
        self,
        round_index: int,
        *,
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
                current, through, expected = self.waiting_for(round_index)
                if current != phase or through >= expected or now() >= phase_deadline:
                    break
                wait(max(0.0, phase_deadline - now()))
            if stopped():
                return
            if phase != "answers":
                self.close_phase(round_index, phase)


def _read_at_most(update: IncomingUpdate, limit: int) -> bytes:
    parts: list[bytes] = []
    received = 0
    for chunk in update.chunks:
        received += len(chunk)
        if received > limit:
            raise MaskingRefused(f"a masked input longer than {limit} bytes")
        parts.append(bytes(chunk))
    return b"".join(parts)
