"""The owners' side of the gRPC transport: a NodeConnection over a TLS channel pinned to one certificate.

`NodeClient.connect` fetches the node's certificate once (trust on first use, good only for asking for
attestation); every call then runs on a channel whose only trusted root is that certificate. If the node later
presents another certificate (another key: a restarted or substituted node), the handshake fails and the client
raises CertificateMismatch: nothing is sent to a node that was not attested.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.core.acknowledgement import Acknowledgement
from enclavefl.core.codec import ModelBytes
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update_message import UpdateMessage
from enclavefl.errors import CertificateMismatch, NodeBusy, ProtocolError, SessionExpired, TlsKeyNotBound
from enclavefl.tee.binding import spki_sha256
from enclavefl.tee.evidence import AttestationBundle
from enclavefl.transport import owner_wire, wire
from enclavefl.transport.api import INLINE_MODEL_BYTES, NodeStatus
from enclavefl.transport.auth import SESSION_METADATA_KEY, Role
from enclavefl.transport.owner_tls import (
    certificate_spki_sha256,
    fetch_server_certificate,
    require_pinned_certificate,
    sign_join,
)
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.proto import enclavefl_pb2_grpc as pb_grpc
from enclavefl.transport.tls import NODE_TLS_NAME

log = logging.getLogger(__name__)
T = TypeVar("T")
# A node over one of its limits (NodeBusy) is asked again after a growing, jittered wait, for this long at most.
BUSY_RETRY_SECONDS = 60.0
BUSY_FIRST_WAIT_SECONDS = 0.05
BUSY_MAX_WAIT_SECONDS = 1.0
_PB_ROLES = {Role.DATA_OWNER: pb.ROLE_DATA_OWNER, Role.MODEL_OWNER: pb.ROLE_MODEL_OWNER}


class NodeClient:
    """Calls one node over a channel pinned to `certificate_pem`. Implements transport.connection.NodeConnection."""

    def __init__(
        self,
        address: str,
        *,
        certificate_pem: bytes,
        chunk_bytes: int = wire.DEFAULT_CHUNK_BYTES,
        timeout: float | None = 600.0,
    ) -> None:
        self.address = address
        self.pinned_certificate_pem = certificate_pem
        self.pinned_spki_sha256 = certificate_spki_sha256(certificate_pem)
        self._chunk_bytes = chunk_bytes
        self._timeout = timeout
        self._session: str | None = None
        self._join_with: Callable[[], None] | None = None  # joins again when the node says the session expired
        self.busy_refusals = 0  # NodeBusy answers this client waited out (benchmarks read it)
        credentials = grpc.ssl_channel_credentials(root_certificates=certificate_pem)
        options: list[tuple[str, str | int]] = [
            ("grpc.ssl_target_name_override", NODE_TLS_NAME),
            # one connection per client, even beside others to the same node in this process (a load generator)
            ("grpc.use_local_subchannel_pool", 1),
            *wire.channel_options(chunk_bytes),
        ]
        self._channel = grpc.secure_channel(address, credentials, options=options)
        self._stub = pb_grpc.NodeStub(self._channel)  # type: ignore[no-untyped-call]
        # Uploads are framed by owner_wire.serialize_upload_part: one copy per chunk, where protobuf makes several.
        self._upload = self._channel.stream_unary(
            "/enclavefl.v1.Node/UploadUpdate",
            request_serializer=owner_wire.serialize_upload_part,
            response_deserializer=pb.UploadAck.FromString,
        )
        # Downloads are parsed by wire.parse_chunk: each chunk is a view of its message, copied once into the model.
        self._download_global = self._channel.unary_stream(
            "/enclavefl.v1.Node/DownloadGlobalModel",
            request_serializer=pb.DownloadRequest.SerializeToString,
            response_deserializer=wire.parse_chunk,
        )
        self._download_final = self._channel.unary_stream(
            "/enclavefl.v1.Node/DownloadFinalModel",
            request_serializer=pb.DownloadRequest.SerializeToString,
            response_deserializer=wire.parse_chunk,
        )
        self.bytes_sent = 0
        self.bytes_received = 0

    @classmethod
    def connect(
        cls, address: str, *, chunk_bytes: int = wire.DEFAULT_CHUNK_BYTES, timeout: float = 600.0
    ) -> NodeClient:
        """Trust on first use: pin whatever certificate the node presents now. Attest before sending anything."""
        pem = fetch_server_certificate(address)
        return cls(address, certificate_pem=pem, chunk_bytes=chunk_bytes, timeout=timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- attestation and joining --------------------------------------------------------------
    def attest(self, nonce: bytes) -> AttestationBundle:
        """The node's evidence for `nonce`; refuses a bundle whose key is not the pinned certificate's key."""
        reply = self._call(lambda: self._stub.Attest(pb.AttestRequest(nonce=nonce), **self._kw()))
        bundle = owner_wire.bundle_from_proto(reply)
        try:
            claimed = spki_sha256(_public_key(bundle.node_public_key_pem))
        except ValueError:
            raise TlsKeyNotBound("the node's attested public key is not a readable PEM key") from None
        if claimed != self.pinned_spki_sha256 or bundle.node_spki_sha256 != self.pinned_spki_sha256:
            raise TlsKeyNotBound(
                "the attested key is not the key of the TLS certificate this channel is pinned to "
                f"(attested {claimed.hex()[:16]}…, channel {self.pinned_spki_sha256.hex()[:16]}…)"
            )
        return bundle

    def join(self, *, role: Role, name: str, private_key: ec.EllipticCurvePrivateKey, job_digest: bytes) -> None:
        """Authenticate as an enrolled party (signed challenge); later calls carry the session token."""
        challenge = self._call(lambda: self._stub.Challenge(pb.ChallengeRequest(), **self._kw())).challenge
        signature = sign_join(
            private_key,
            role=role,
            name=name,
            job_digest=job_digest,
            node_spki_sha256=self.pinned_spki_sha256,
            challenge=challenge,
        )
        request = pb.JoinRequest(role=_PB_ROLES[role], name=name, challenge=challenge, signature=signature)
        joined = self._call(lambda: self._stub.Join(request, **self._kw()))
        self._session = bytes(joined.session).hex()
        if joined.replaced_sessions:  # the other holder of this key is told too: its next call is SessionReplaced
            log.warning(
                "the node held %d live session(s) for %s %r: this join replaced them. If another process runs with "
                "this key, stop one of the two (each would lose rounds to the other)",
                joined.replaced_sessions,
                role.value,
                name,
            )
        self._join_with = lambda: self.join(role=role, name=name, private_key=private_key, job_digest=job_digest)

    # --- NodeConnection -----------------------------------------------------------------------
    def node_status(self, *, seen: NodeStatus | None = None, wait_seconds: float = 0.0) -> NodeStatus:
        """The node's status; with `seen` and `wait_seconds`, a long poll: the node answers when its status differs
        from `seen` (a round opened, sealed, was released; the job ended) or after `wait_seconds`."""
        if seen is None or wait_seconds <= 0:
            request = pb.StatusRequest()
        else:
            # the node compares round, phase, attempt, rounds and state: the receipt and model need not go back
            seen = dataclasses.replace(seen, pending=None, global_model=b"")
            request = pb.StatusRequest(seen=wire.status_to_proto(seen), wait_ms=max(1, round(wait_seconds * 1000)))
        timeout: float | str | None = "default" if self._timeout is None else self._timeout + wait_seconds
        # _kw inside the call: a retry after a re-join (SessionExpired) must carry the new session
        return owner_wire.status_from_proto(self._call(lambda: self._stub.Status(request, **self._kw(timeout))))

    def global_model_bytes(self, round_index: int) -> ModelBytes:
        request = pb.DownloadRequest(round=round_index)
        return self._download(lambda: self._download_global(request, **self._kw()))

    def released_model_bytes(self, round_index: int) -> ModelBytes:
        """The model released after `round_index` (the model owner's call; the node keeps only the last one)."""
        request = pb.DownloadRequest(round=round_index)
        return self._download(lambda: self._download_global(request, **self._kw()))

    def upload_update(self, message: UpdateMessage) -> bytes:
        """Stream one update; returns the payload SHA-256 the node folded.

        The round's receipt lists the header's commitment, not this hash: the salt goes to the enclave only.
        """
        return bytes(self._upload_ack(message).payload_sha256)

    def upload_for_status(self, message: UpdateMessage, *, wait_seconds: float) -> NodeStatus | None:
        """`upload_update`, answered once the round has left the phase the upload found (sealed, or failed) or
        after `wait_seconds`: the node's status then (None from a node that does not send it). It saves the
        status call an owner would otherwise make to wait for the seal."""
        ack = self._upload_ack(message, wait_seconds=wait_seconds)
        return owner_wire.status_from_proto(ack.status) if ack.HasField("status") else None

    def _upload_ack(self, message: UpdateMessage, *, wait_seconds: float = 0.0) -> pb.UploadAck:
        """Send the update; with `wait_seconds` > 0 the node answers at the seal (or after that long)."""
        wait_ms = max(1, round(wait_seconds * 1000)) if wait_seconds > 0 else 0
        meta = owner_wire.metadata_from_header(message.header, total_bytes=len(message.payload), wait_ms=wait_ms)
        timeout: float | str | None = "default" if self._timeout is None else self._timeout + wait_seconds

        if len(message.payload) <= min(INLINE_MODEL_BYTES, self._chunk_bytes):  # one message: no stream to set up
            part = pb.UploadPart(metadata=meta, data=bytes(message.payload))
            small: pb.UploadAck = self._call(lambda: self._stub.UploadSmallUpdate(part, **self._kw(timeout)))
            self.bytes_sent += len(message.payload)
            return small

        def parts() -> Iterator[pb.UploadPart | bytes]:
            yield pb.UploadPart(metadata=meta)
            unsent = len(message.payload)
            for part in owner_wire.framed_ahead(message.payload, self._chunk_bytes):
                self.bytes_sent += min(unsent, self._chunk_bytes)
                unsent -= self._chunk_bytes
                yield part

        streamed: pb.UploadAck = self._call(lambda: self._upload(parts(), **self._kw(timeout)))
        return streamed

    # --- receipts and the model owner's calls -------------------------------------------------
    def receipts(self) -> tuple[SignedReceipt, ...]:
        return owner_wire.receipts_from_proto(
            self._call(lambda: self._stub.Receipts(pb.ReceiptsRequest(), **self._kw()))
        )

    def pending_receipt(self) -> SignedReceipt:
        """The sealed round's receipt (data owners only), parsed; verify it under the attested key before use."""
        reply = self._call(lambda: self._stub.PendingReceipt(pb.PendingReceiptRequest(), **self._kw()))
        return owner_wire.receipt_from_proto(reply)

    def acknowledge(self, ack: Acknowledgement) -> None:
        """Send this owner's signature over the pending receipt (the node takes the name from the session)."""
        self.acknowledge_for_status(ack)

    def acknowledge_for_status(self, ack: Acknowledgement) -> NodeStatus | None:
        """`acknowledge`, returning the node's status once the round is released and the next one opened (or after
        the node's short wait); None from a node that does not send it."""
        request = pb.AcknowledgeRequest(round=ack.round, receipt_sha256=ack.receipt_sha256, signature=ack.signature)
        reply = self._call(lambda: self._stub.Acknowledge(request, **self._kw()))
        return owner_wire.status_from_proto(reply.status) if reply.HasField("status") else None

    def masking_step(self, *, round_index: int, step: str, body: bytes = b"") -> tuple[bool, bytes]:
        """One masked-mode step (data owners); (ready, reply body): not ready while the node keeps the phase open."""
        request = pb.MaskingRequest(round=round_index, step=step, body=body)
        reply = self._call(lambda: self._stub.Masking(request, **self._kw()))
        return bool(reply.ready), bytes(reply.body)

    def submit_initial_model(self, payload: bytes) -> str:
        def chunks() -> Iterator[pb.Chunk]:  # a fresh iterator per attempt: a retried call sends every byte again
            return (pb.Chunk(data=piece) for piece in owner_wire.chunked(payload, self._chunk_bytes))

        return str(self._call(lambda: self._stub.SubmitInitialModel(chunks(), **self._kw())).model_sha256)

    def watch(self, *, after_round: int = 0) -> Iterator[RoundSummary]:
        """Round summaries as rounds close, until the job ends (no deadline on this call)."""
        request = pb.WatchRequest(after_round=after_round)

        def opened() -> tuple[Iterator[pb.RoundSummary], pb.RoundSummary | None]:
            stream = self._stub.Watch(request, **self._kw(None))
            try:  # a refusal (a limit, an expired session) arrives with the first message: retried like a call
                return stream, next(stream, None)
            except grpc.RpcError as exc:
                raise self._translate(exc) from None

        stream, first = self._retrying(opened)
        if first is None:
            return
        yield owner_wire.summary_from_proto(first)
        try:
            for msg in stream:
                yield owner_wire.summary_from_proto(msg)
        except grpc.RpcError as exc:
            raise self._translate(exc) from None

    def final_model_bytes(self) -> ModelBytes:
        return self._download(lambda: self._download_final(pb.DownloadRequest(), **self._kw()))

    # --- internals ----------------------------------------------------------------------------
    def _kw(self, timeout: float | str | None = "default") -> dict[str, object]:
        metadata = ((SESSION_METADATA_KEY, self._session),) if self._session else ()
        return {"metadata": metadata, "timeout": self._timeout if timeout == "default" else timeout}

    def _download(self, start: Callable[[], Iterator[memoryview]]) -> ModelBytes:
        """The whole model in one buffer: each chunk is copied once, into it (no final `bytes()` copy). A download
        refused as NodeBusy (or on an expired session) starts again from the first byte."""

        def once() -> bytearray:
            data = bytearray()
            try:
                for chunk in start():
                    data += chunk
            except grpc.RpcError as exc:
                raise self._translate(exc) from None
            return data

        data = self._retrying(once)
        self.bytes_received += len(data)
        return data  # a bytearray: callers only read it (decode_weights makes views, hashing reads)

    def _call(self, fn: Callable[[], T]) -> T:
        def once() -> T:
            try:
                return fn()
            except grpc.RpcError as exc:
                raise self._translate(exc) from None

        return self._retrying(once)

    def _retrying(self, once: Callable[[], T]) -> T:
        """Run `once`; wait out NodeBusy (jittered, growing waits up to BUSY_RETRY_SECONDS) and re-join once on
        SessionExpired. Every call is safe to repeat: a refused one did nothing on the node."""
        give_up = time.monotonic() + BUSY_RETRY_SECONDS
        wait, rejoined = BUSY_FIRST_WAIT_SECONDS, False
        while True:
            try:
                return once()
            except SessionExpired:
                if rejoined or self._join_with is None:
                    raise
                rejoined = True
                self._join_with()
            except NodeBusy:
                if time.monotonic() + wait > give_up:
                    raise
                self.busy_refusals += 1
                time.sleep(wait * (0.5 + secrets.randbelow(1000) / 1000))  # jitter: refused callers spread out
                wait = min(2 * wait, BUSY_MAX_WAIT_SECONDS)

    def _translate(self, exc: grpc.RpcError) -> Exception:
        refused = owner_wire.error_from_rpc(exc)
        if refused is not None:
            return refused
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        if code == grpc.StatusCode.UNAVAILABLE:
            try:
                presented = fetch_server_certificate(self.address, timeout=5.0)
            except ProtocolError:
                return ProtocolError(f"the node at {self.address} is unreachable: {details}")
            try:
                require_pinned_certificate(presented, self.pinned_certificate_pem, address=self.address)
            except CertificateMismatch as mismatch:
                return mismatch
        return ProtocolError(f"call to the node at {self.address} failed: {code}: {details}")


def _public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an EC public key")
    return key
