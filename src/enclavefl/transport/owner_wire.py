"""The owners' side of the wire: the node's answers parsed into enclavefl values, the upload header framed.

    refused = error_from_rpc(exc)                    # the EnclaveFLError the node sent, or None
    bundle = bundle_from_proto(reply)                # an Attest answer (QuoteFormatError on an unknown TEE)
    chain = receipts_from_proto(reply)               # ReceiptError on a malformed receipt

Only data owners and the model owner (transport/grpc_client.py) run these; the node's half of the format is
transport/wire.py, and keeping the two apart keeps the client's parsers out of the enclave's import closure.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from enclavefl import errors
from enclavefl.core.messages import RoundSummary
from enclavefl.core.receipts import SignedReceipt
from enclavefl.core.update import UpdateHeader
from enclavefl.errors import EnclaveFLError, ProtocolError, ReceiptError
from enclavefl.tee.evidence import AttestationBundle, Evidence, TeeKind
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.wire import ERROR_METADATA_KEY


def error_from_rpc(exc: grpc.RpcError) -> EnclaveFLError | None:
    """The enclavefl error a node sent (same class, same message), or None if the failure is not one."""
    call = exc if isinstance(exc, grpc.Call) else None
    if call is None:
        return None
    name = next((v for k, v in (call.trailing_metadata() or ()) if k == ERROR_METADATA_KEY), None)
    if name is None:
        return None
    cls = getattr(errors, str(name), None)
    details = call.details() or ""
    if isinstance(cls, type) and issubclass(cls, EnclaveFLError):
        return cls(details)
    return ProtocolError(f"the node refused with an unknown error {name!r}: {details}")


def bundle_from_proto(msg: pb.AttestationBundle) -> AttestationBundle:
    try:
        tee = TeeKind(msg.tee)
    except ValueError:
        raise errors.QuoteFormatError(f"the node claims an unknown TEE kind {msg.tee!r}") from None
    return AttestationBundle(
        evidence=Evidence(tee=tee, quote=bytes(msg.quote), collateral_json=msg.collateral_json),
        node_spki_sha256=bytes(msg.node_spki_sha256),
        job_digest=bytes(msg.job_digest),
        node_public_key_pem=bytes(msg.node_public_key_pem),
    )


def summary_from_proto(msg: pb.RoundSummary) -> RoundSummary:
    return RoundSummary(
        round=msg.round,
        contributions=msg.contributions,
        global_model_sha256=msg.global_model_sha256,
        metrics=dict(msg.metrics),
        rejected=dict(msg.rejected),
        evaluation=dict(msg.evaluation),
    )


def receipts_from_proto(msg: pb.ReceiptChain) -> tuple[SignedReceipt, ...]:
    try:
        return tuple(SignedReceipt.parse(bytes(r.body), bytes(r.signature)) for r in msg.receipts)
    except ReceiptError as exc:
        raise ReceiptError(f"the node sent a malformed receipt: {exc}") from None


def metadata_from_header(header: UpdateHeader, *, total_bytes: int, wait_ms: int) -> pb.UploadMetadata:
    """An upload's metadata as its owner sends it (no owner field: the node takes the session's)."""
    return pb.UploadMetadata(
        round=header.round,
        num_examples=header.num_examples,
        metrics=dict(header.metrics),
        total_bytes=total_bytes,
        commitment_salt=header.commitment_salt,
        commitment=header.commitment,
        wait_ms=wait_ms,
        evaluation=dict(header.evaluation),
        evaluation_examples=header.evaluation_examples,
    )


# --- chunks ---------------------------------------------------------------------------------
def chunked(data: bytes | memoryview, chunk_bytes: int) -> Iterator[bytes]:
    """`data` in slices of at most `chunk_bytes` (each copied once into its message)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_bytes):
        yield bytes(view[start : start + chunk_bytes])
