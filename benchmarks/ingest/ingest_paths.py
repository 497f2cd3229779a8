"""bench_ingest's four receiving paths, each in this process, its sender in another; each returns the sender's
report plus `receiver_cpu_seconds` (and, for the node and ssl + node ingest, CPU seconds by thread).

    node_throughput(work, params, chunk_bytes)   # the node: attested gRPC/TLS, checks, staging, hash, fold
    ssl_throughput(work, params)                 # plain ssl socket, recv_into a preallocated buffer (baseline)
    grpc_alone_throughput(work, params, chunk)   # the node's gRPC options and framing, copy only
    ssl_ingest_throughput(work, params)          # plain ssl socket, the node's ingest (UpdateIngest) on its bytes
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

from ingest_raw import receive_update
from ingest_setup import (
    MiB,
    cpu_by_thread_kind,
    cpu_seconds,
    model,
    prepare,
    report_of,
    spawn_sender,
    thread_cpu_seconds,
    thread_figures,
    wait_started,
)

from enclavefl.aggregation.fedavg import FedAvg
from enclavefl.core.codec import encode_weights
from enclavefl.core.update import UpdateHeader
from enclavefl.enclave.node import AggregatorNode
from enclavefl.enclave.staging import StagingPool
from enclavefl.transport.tls import private_key_pem, self_signed_certificate
from enclavefl.transport.wire import DEFAULT_CHUNK_BYTES

GRPC_ALONE_METHOD = "/bench.Drain/Upload"
RAW_PREAMBLE = struct.Struct(">32s32sQ")  # ssl + node ingest: commitment salt, commitment, payload length


def node_throughput(work: Path, params: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> dict[str, float]:
    """Seconds of the upload, seconds the owner spent hashing its payload for the commitment before it, and the
    CPU seconds each side spent during the upload (the node's: from the sender's first byte to its report).

    The job waits for two owners and only one uploads, so the round does not close and seal (a second pass over
    the model, and the sealed checkpoint written) inside the measured window: ingest is receive, checks, the
    commitment's hash, and the fold into the accumulator, all done before the node acknowledges."""
    import json

    job, _, tee = prepare(work, params=params, owners=2)
    node = AggregatorNode(job=job, tee=tee, initial_model=model(params)).serve_grpc(chunk_bytes=chunk_bytes).start()
    try:
        sender = spawn_sender(
            work, kind="grpc", name="owner0", address=node.address, params=params, chunk_bytes=chunk_bytes
        )
        wait_started(sender)
        assert sender.stdout is not None
        node_cpu, at_start = cpu_seconds(), thread_cpu_seconds()
        line = sender.stdout.readline()  # the report, printed once the node's acknowledgement arrived
        node_cpu, threads = cpu_seconds() - node_cpu, cpu_by_thread_kind(at_start, thread_cpu_seconds())
        report_of(sender)  # the exit status
        report = dict(json.loads(line))
        if node.node_status().contributions != 1:
            raise RuntimeError(f"the node did not count the upload: {node.node_status()}")
    finally:
        node.stop(0)
    return {**report, **thread_figures("thread", threads, node_cpu), "receiver_cpu_seconds": node_cpu}


def grpc_alone_throughput(work: Path, params: int, chunk_bytes: int) -> dict[str, float]:
    """gRPC/TLS with the node's options and framing into a buffer, and nothing else: the transport's own speed."""
    from concurrent import futures

    import grpc
    from cryptography.hazmat.primitives.asymmetric import ec

    from enclavefl.transport import wire

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed_certificate(key, common_name="bench")
    (work / "grpc.pem").write_bytes(certificate)
    buffer = memoryview(bytearray(len(encode_weights(model(params)))))  # preallocated, like the staging slot
    cpu: list[float] = []

    def drain(frames: Iterator[wire.UploadFrame], context: grpc.ServicerContext) -> bytes:
        start, received = cpu_seconds(), 0
        for frame in frames:
            end = min(received + len(frame.data), len(buffer))
            buffer[received:end] = frame.data[: end - received]
            received = end
        cpu.append(cpu_seconds() - start)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=wire.channel_options(chunk_bytes))
    handler = grpc.stream_unary_rpc_method_handler(
        drain, request_deserializer=wire.parse_upload_part, response_serializer=bytes
    )
    service, method = GRPC_ALONE_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(private_key_pem(key), certificate)]))
    server.start()
    try:
        sender = spawn_sender(
            work, kind="grpc-alone", name="-", address=f"127.0.0.1:{port}", params=params, chunk_bytes=chunk_bytes
        )
        report = report_of(sender)
    finally:
        server.stop(0)
    return {**report, "receiver_cpu_seconds": cpu[-1]}


def _ssl_listener(work: Path) -> tuple[ssl.SSLContext, socket.socket, str]:
    """A TLS server context with a throwaway key (its certificate in work/ssl.pem for the sender) and a listener."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (work / "ssl.pem").write_bytes(self_signed_certificate(key, common_name="bench"))
    (work / "ssl.key").write_bytes(private_key_pem(key))  # a benchmark's throwaway key, not a node key
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(work / "ssl.pem", work / "ssl.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(120)  # a sender that dies before connecting must not hang the benchmark
    return context, listener, f"127.0.0.1:{listener.getsockname()[1]}"


def ssl_throughput(work: Path, params: int) -> dict[str, float]:
    context, listener, address = _ssl_listener(work)
    sender = spawn_sender(work, kind="ssl", name="-", address=address, params=params)
    payload_size = len(encode_weights(model(params)))
    buffer = bytearray(payload_size)  # preallocated, like the node's staging slot
    view = memoryview(buffer)
    raw, _ = listener.accept()
    receiver_cpu = cpu_seconds()
    with context.wrap_socket(raw, server_side=True) as tls:
        received = 0
        while received < payload_size:
            n = tls.recv_into(view[received:], min(MiB, payload_size - received))
            if n == 0:
                break
            received += n
        tls.sendall(b"k")
    receiver_cpu = cpu_seconds() - receiver_cpu
    listener.close()
    return {**report_of(sender), "receiver_cpu_seconds": receiver_cpu}


def ssl_ingest_throughput(work: Path, params: int) -> dict[str, float]:
    """The `ssl` baseline's socket, but the receiver does the node's ingest on the bytes: the header checks, the
    payload read straight into a staging slot, NaN/Inf and SHA-256 as it lands (the digest on its helper thread),
    the commitment checked, the fold into a FedAvg accumulator, the digest sent back as the acknowledgement, all by
    the node's own pieces (ingest_raw.py). What moving the upload's bytes off gRPC could reach, with the same work."""
    work = work / "ssl-ingest"  # its own job and owner keys, beside the node path's
    work.mkdir()
    job, _, _ = prepare(work, params=params, owners=2)
    accumulator = FedAvg().start_round(model(params))  # made at round open on the node: outside the window
    schema = model(params).schema
    pool = StagingPool(nbytes=schema.nbytes, slots=1)  # its slot is made on first use (in the window), as the node's
    context, listener, address = _ssl_listener(work)
    sender = spawn_sender(work, kind="ssl-ingest", name="owner0", address=address, params=params)
    raw, _ = listener.accept()
    receiver_cpu, at_start = cpu_seconds(), thread_cpu_seconds()
    with context.wrap_socket(raw, server_side=True) as tls:
        preamble = bytearray(RAW_PREAMBLE.size)
        got = 0
        while got < len(preamble) and (n := tls.recv_into(memoryview(preamble)[got:])):
            got += n
        salt, commitment, length = RAW_PREAMBLE.unpack(preamble)
        header = UpdateHeader(owner="owner0", round=1, num_examples=1, commitment_salt=salt, commitment=commitment)
        payload_sha256, steps = receive_update(
            tls, job=job, schema=schema, header=header, length=length, pool=pool, fold=accumulator
        )
        tls.sendall(payload_sha256)
    receiver_cpu, threads = cpu_seconds() - receiver_cpu, cpu_by_thread_kind(at_start, thread_cpu_seconds())
    listener.close()
    del pool  # the slot's pages are freed after the window (the node frees its slot at round close)
    if accumulator.contributions != 1:
        raise RuntimeError("ssl + node ingest: the update was not folded")
    by_step = {f"raw step:{name}": seconds for name, seconds in steps.items()}
    rest = threads.get("MainThread", 0.0) - sum(steps.values())  # handshake, set-up (/proc ticks: 10 ms)
    by_step["raw step:(the rest: TLS handshake, set-up, header checks)"] = max(0.0, rest)
    figures = {**thread_figures("raw", threads, receiver_cpu), **by_step}
    return {**report_of(sender), **figures, "receiver_cpu_seconds": receiver_cpu}
