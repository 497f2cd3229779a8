"""bench_ingest's senders (`bench_ingest.py sender --kind ...`): each a process of its own, printing one JSON line.

run_sender(args)   # kind: grpc (a data owner: attest, join, upload), ssl, ssl-ingest, grpc-alone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import time
import warnings
from pathlib import Path

from ingest_paths import GRPC_ALONE_METHOD, RAW_PREAMBLE
from ingest_setup import STARTED, cpu_seconds, model

from enclavefl.core.codec import encode_weights
from enclavefl.core.jobfile import load_job
from enclavefl.core.update_message import UpdateMessage
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.transport.owner_tls import OwnerCredentials


def run_sender(args: argparse.Namespace) -> None:
    """Child process: send the payload along path `args.kind`; print the seconds it took (and its CPU seconds)."""
    work = Path(args.dir)
    payload = encode_weights(model(args.params, 1.0))
    if args.kind in ("ssl", "ssl-ingest"):
        send_ssl(args, work, payload)
    elif args.kind == "grpc-alone":
        send_grpc_alone(args.address, (work / "grpc.pem").read_bytes(), payload, args.chunk_bytes)
    else:
        send_to_node(args, work, payload)


def send_ssl(args: argparse.Namespace, work: Path, payload: bytes) -> None:
    """The plain socket: the payload alone (ssl), or preceded by the update's commitment (ssl-ingest), whose
    receiver answers the payload's SHA-256 once it folded the update."""
    context = ssl.create_default_context(cafile=str(work / "ssl.pem"))
    context.check_hostname = False
    host, port = args.address.rsplit(":", 1)
    preamble = b""
    if args.kind == "ssl-ingest":  # the owner's commitment, before the timing (as on the node path)
        header = UpdateMessage.of(owner=args.name, round=1, num_examples=1, payload=payload).header
        preamble = RAW_PREAMBLE.pack(header.commitment_salt, header.commitment, len(payload))
    start, cpu = time.perf_counter(), cpu_seconds()
    with socket.create_connection((host, int(port))) as raw, context.wrap_socket(raw) as tls:
        if preamble:
            tls.sendall(preamble)
        tls.sendall(payload)
        ack = b""
        while len(ack) < (32 if preamble else 1) and (more := tls.recv(32 - len(ack))):
            ack += more
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    if preamble and ack != hashlib.sha256(payload).digest():
        raise RuntimeError(f"ssl + node ingest: the receiver acknowledged {ack.hex()}, not the payload's SHA-256")
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "bytes": len(payload)}))


def send_to_node(args: argparse.Namespace, work: Path, payload: bytes) -> None:
    """A data owner: attest, join, wait for round 1, stream the update."""
    from enclavefl.owner.attested import connect_data_owner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job, policy = load_job(work / "job.toml"), load_policy(work / "policy.toml")
    credentials = OwnerCredentials.load(work / f"{args.name}.key", work / f"{args.name}.pem")
    node = connect_data_owner(
        args.address, name=args.name, job=job, policy=policy, credentials=credentials, chunk_bytes=args.chunk_bytes
    )
    while node.client.node_status().phase.value != "open":
        time.sleep(0.01)
    start = time.perf_counter()
    # the owner's own commitment to its payload (a SHA-256 of it, salted), computed before any byte is sent
    message = UpdateMessage.of(owner=args.name, round=1, num_examples=1, payload=payload)
    print(STARTED, flush=True)  # the node's side starts counting its CPU time here
    hashed, cpu = time.perf_counter(), cpu_seconds()
    node.client.upload_update(message)
    done, cpu = time.perf_counter(), cpu_seconds() - cpu
    report = {"seconds": done - hashed, "owner_hash_seconds": hashed - start, "cpu_seconds": cpu, "bytes": len(payload)}
    print(json.dumps(report))


def send_grpc_alone(address: str, certificate_pem: bytes, payload: bytes, chunk_bytes: int) -> None:
    """The sender of the gRPC-alone path: the client's channel options and upload framing, nothing else."""
    import grpc

    from enclavefl.transport import owner_wire, wire
    from enclavefl.transport.tls import NODE_TLS_NAME

    options = [("grpc.ssl_target_name_override", NODE_TLS_NAME), *wire.channel_options(chunk_bytes)]
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate_pem)
    with grpc.secure_channel(address, credentials, options=options) as channel:
        upload = channel.stream_unary(
            GRPC_ALONE_METHOD, request_serializer=owner_wire.serialize_upload_part, response_deserializer=bytes
        )
        upload(iter([memoryview(b"connect")]))  # the TLS handshake, outside the timing (as attestation is)
        start, cpu = time.perf_counter(), cpu_seconds()
        upload(owner_wire.framed_ahead(payload, chunk_bytes))  # as the data owner's client frames them
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "bytes": len(payload)}))
