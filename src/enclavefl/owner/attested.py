"""An owner's first step with any node: attest it over a connection, and only then act through that connection.

    node = connect_data_owner("host:port", name="alice", job=job, policy=policy, credentials=creds)   # gRPC
    node = attest_node(InMemoryClient(service, caller="alice"), job=job, policy=policy, now=int(time.time()))
    node.client.upload_for_status(message, wait_seconds=2.0)     # every call goes through the attested connection

Nothing is sent before the node's evidence verified under the caller's policy, fresh nonce, job digest and the
connection's pinned key: `attest_node` and `connect_*` raise the precise AttestationError leaf otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.clock import Clock, SystemClock
from enclavefl.core.job import JobSpec
from enclavefl.errors import CollateralExpired, CollateralFromTheFuture, TeeUnavailable
from enclavefl.privacy.epsilon import verify_epsilon_schedule
from enclavefl.tee.collateral import CollateralSource
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.tee.verify.attest import verify_node
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.verified import VerifiedEnclave
from enclavefl.transport.auth import Role
from enclavefl.transport.connection import NodeConnection
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestedNode:
    """A client pinned to a node whose evidence verified under the caller's policy and nonce."""

    client: NodeConnection  # gRPC (NodeClient) or in memory (InMemoryClient): the same calls
    verified: VerifiedEnclave
    node_public_key_pem: bytes  # the attested key: it signs the receipts
    # The evidence that verified, with its nonce and time: the model owner's receipts file embeds them so that a
    # third party can check the chain's key was attested (owner/provenance.py).
    bundle: AttestationBundle | None = None
    nonce: bytes = b""
    attested_at: int = 0
    signing_key: ec.EllipticCurvePrivateKey | None = None  # the caller's enrolled key: signs pending receipts


# Refusals that time can cure: the node's collateral expired (its host agent refreshes it) or is dated beyond the
# tolerated clock skew (the clocks converge, or the fresh bundle ages), or the node (its host agent not yet
# running) or our own PCCS could not provide collateral. Retried with a fresh nonce and a message; every other
# refusal is final at once.
TRANSIENT_REFUSALS: Final = (CollateralExpired, CollateralFromTheFuture, TeeUnavailable)
ATTEST_RETRY_DELAYS: Final = (2.0, 5.0, 10.0, 20.0)
# The longest one status long poll waits for the node to change; it answers at once when something happens.
STATUS_WAIT_SECONDS: Final = 2.0


def attest_node(
    client: NodeConnection,
    *,
    job: JobSpec,
    policy: AttestationPolicy,
    now: int,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    retry_delays: tuple[float, ...] = ATTEST_RETRY_DELAYS,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Fresh nonce, Attest, verify quote + policy + binding to the connection's pinned key and to `job`.

    With `collateral` (e.g. PccsCollateralSource of the owner's own PCCS) the quote is verified against what it
    fetches, not against the collateral the node sent.

    A refusal in TRANSIENT_REFUSALS is logged and retried after each of `retry_delays` (fresh nonce, `now` read
    again from `clock`); the last refusal is raised. The job's epsilon schedule is checked first
    (EpsilonScheduleMismatch: nothing is sent).
    """
    verify_epsilon_schedule(job)
    attempt = 0
    while True:
        nonce = secrets.token_bytes(32)
        try:
            bundle = client.attest(nonce)  # a node whose host agent has not written collateral yet: TeeUnavailable
            if collateral is not None:
                own = collateral.collateral_for(bundle.evidence.quote)
                bundle = dataclasses.replace(bundle, evidence=dataclasses.replace(bundle.evidence, collateral_json=own))
            verified = verify_node(
                bundle,
                policy=policy,
                nonce=nonce,
                expected_job_digest=job.digest(),
                channel_spki_sha256=client.pinned_spki_sha256,
                now=now,
            )
        except TRANSIENT_REFUSALS as exc:
            if attempt >= len(retry_delays):
                raise
            delay = retry_delays[attempt]
            log.warning(
                "attestation refused, possibly transient (%s: %s); nothing was sent; retrying in %g s (%d of %d)",
                type(exc).__name__,
                exc,
                delay,
                attempt + 1,
                len(retry_delays),
            )
            sleep(delay)
            now = int(clock.now()) if clock is not None else now + int(delay)
            attempt += 1
            continue
        return AttestedNode(
            client=client,
            verified=verified,
            node_public_key_pem=bundle.node_public_key_pem,
            bundle=bundle,
            nonce=nonce,
            attested_at=now,
        )


def connect_and_attest(
    address: str,
    *,
    role: Role,
    name: str,
    job: JobSpec,
    policy: AttestationPolicy,
    credentials: OwnerCredentials,
    clock: Clock | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    client: NodeClient | None = None,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Pin the node's certificate, verify its evidence, then join as `role` (the join is the first thing sent)."""
    client = client or NodeClient.connect(address, chunk_bytes=chunk_bytes)
    try:  # attested first: the join (a signature by the owner's key) is the first thing sent
        chosen_clock = clock or SystemClock()
        attested = attest_node(
            client, job=job, policy=policy, now=int(chosen_clock.now()), clock=chosen_clock, collateral=collateral
        )
        client.join(role=role, name=name, private_key=credentials.private_key, job_digest=job.digest())
    except BaseException:
        client.close()
        raise
    return dataclasses.replace(attested, signing_key=credentials.private_key)


def connect_data_owner(
    address: str,
    *,
    name: str,
    job: JobSpec,
    policy: AttestationPolicy,
    credentials: OwnerCredentials,
    clock: Clock | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    collateral: CollateralSource | None = None,
) -> AttestedNode:
    """Attest the node at `address` and join as data owner `name`. Raises an AttestationError leaf on mismatch."""
    return connect_and_attest(
        address,
        role=Role.DATA_OWNER,
        name=name,
        job=job,
        policy=policy,
        credentials=credentials,
        clock=clock,
        chunk_bytes=chunk_bytes,
        collateral=collateral,
    )
