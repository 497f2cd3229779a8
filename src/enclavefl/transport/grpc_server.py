"""The node's gRPC server: grpc.aio on one event-loop thread, TLS with the attested key, every `Node` method.

    server = NodeServer(node, private_key=identity.private_key, host="127.0.0.1", port=0).start()
    server.address                   # "127.0.0.1:PORT"; data owners pin `server.certificate_pem` before attesting
    server.threads                   # the threads it runs, whatever the number of owners (sgx.max_threads)

The handlers are transport/grpc_servicer.py's; the node behind them is any NodeService (enclave/node.py). Calls
that wait (long polls, Watch, uploads waiting for a slot or the seal) are coroutines on the loop and hold no
thread; NodeService calls run on `work_threads` threads and uploads on one thread per staging slot, so the
server's thread count is fixed when it starts (tee/gramine_pkg/threads.py derives sgx.max_threads from it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from enclavefl.errors import BindError, PortInUse
from enclavefl.tee.binding import spki_sha256
from enclavefl.transport import answers, wire
from enclavefl.transport.auth import JoinAuthority
from enclavefl.transport.grpc_servicer import DOWNLOADS, PARSERS, NodeServicer, Pools
from enclavefl.transport.limits import CallGate, NodeLimits
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.tls import private_key_pem, self_signed_certificate

if TYPE_CHECKING:
    from enclavefl.transport.service import NodeService

log = logging.getLogger(__name__)

DEFAULT_WORK_THREADS = 4  # NodeService calls at once (status reads, signature checks, quotes); `--rpc-workers`
_HANDLER_KINDS = {  # (client streaming, server streaming) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _handlers(servicer: NodeServicer) -> tuple[str, dict[str, grpc.RpcMethodHandler]]:
    """Every method of the proto's `Node` service, read from its descriptor.

    Not through the generated `enclavefl_pb2_grpc` module: it is mostly client stubs, which the enclave never
    runs, so the enclave's TCB carries only the message classes. Uploads are parsed by wire.parse_upload_part
    (no payload copies).
    """
    service = pb.DESCRIPTOR.services_by_name["Node"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request = getattr(pb, method.input_type.name)
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        parse = wire.lenient(PARSERS.get(method.name, request.FromString))
        serialize = wire.serialize_chunk if method.name in DOWNLOADS else answers.serialize
        handlers[method.name] = kind(
            getattr(servicer, method.name), request_deserializer=parse, response_serializer=serialize
        )
    return service.full_name, handlers


class NodeServer:
    """A running gRPC server for one node: TLS with a self-signed certificate for the node's attested key."""

    def __init__(
        self,
        node: NodeService,
        *,
        private_key: ec.EllipticCurvePrivateKey,
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_bytes: int = wire.DEFAULT_CHUNK_BYTES,
        work_threads: int = DEFAULT_WORK_THREADS,
        ingest_slots: int = 1,
        limits: NodeLimits | None = None,
    ) -> None:
        limits = limits or NodeLimits()
        self.certificate_pem = self_signed_certificate(private_key, common_name="enclavefl aggregator node")
        self.authority = JoinAuthority(
            job=node.job,
            node_spki_sha256=spki_sha256(private_key.public_key()),
            session_lifetime_seconds=limits.session_lifetime_seconds,
        )
        self.gate = CallGate(limits)
        self._work = futures.ThreadPoolExecutor(max_workers=work_threads, thread_name_prefix="enclavefl-work")
        self._ingest = futures.ThreadPoolExecutor(max_workers=ingest_slots, thread_name_prefix="enclavefl-ingest")
        for pool, size in ((self._work, work_threads), (self._ingest, ingest_slots)):
            _start_every_thread(pool, size)
        self.threads = 1 + work_threads + ingest_slots  # the loop's own thread and the two pools
        self.servicer = NodeServicer(
            node,
            self.authority,
            chunk_bytes=chunk_bytes,
            gate=self.gate,
            pools=Pools(work=self._work, ingest=self._ingest, ingest_slots=ingest_slots),
        )
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="enclavefl-rpc", daemon=True)
        self._thread.start()
        try:
            self.port: int = self._on_loop(self._bind(private_key, host, port, chunk_bytes))
        except BaseException:
            self._close_loop()
            raise

    async def _bind(self, private_key: ec.EllipticCurvePrivateKey, host: str, port: int, chunk_bytes: int) -> int:
        self.servicer.bind(asyncio.get_running_loop())
        self._server = aio.server(
            # No SO_REUSEPORT: with it a second node on the same port also binds, and the kernel then splits
            # clients between two nodes with different keys and jobs (random JobDigestMismatch for everyone).
            options=[*wire.channel_options(chunk_bytes), ("grpc.so_reuseport", 0)],
        )
        name, handlers = _handlers(self.servicer)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
        self._server.add_registered_method_handlers(name, handlers)
        # The key goes to gRPC as bytes in memory; it is never written anywhere.
        credentials = grpc.ssl_server_credentials([(private_key_pem(private_key), self.certificate_pem)])
        try:
            bound = int(self._server.add_secure_port(f"{host}:{port}", credentials))
        except RuntimeError:  # newer grpcio raises where older ones return 0
            bound = 0
        if bound == 0:
            raise bind_error(host, port)
        return bound

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> NodeServer:
        self._on_loop(self._server.start())
        log.info("node serving on %s", self.address)
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        if self._loop.is_closed():
            return
        try:
            self._on_loop(self._server.stop(grace))
            self._on_loop(_cancel_other_tasks())
        finally:
            self._close_loop()

    def cancel_active_uploads(self) -> int:
        return self.servicer.cancel_active_uploads()

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
        self._work.shutdown(wait=False, cancel_futures=True)
        self._ingest.shutdown(wait=False, cancel_futures=True)


async def _cancel_other_tasks() -> None:
    """Cancel what is still pending on the loop (a status read for parked calls) and let it finish: a loop closed
    with pending tasks logs "Task was destroyed but it is pending!" for each."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


def _start_every_thread(pool: futures.ThreadPoolExecutor, size: int) -> None:
    """Start all `size` threads of `pool` now (a pool starts them as work comes): the count is fixed from the start."""
    everyone = threading.Barrier(size)
    for started in [pool.submit(everyone.wait) for _ in range(size)]:
        started.result()


def bind_error(host: str, port: int) -> BindError:
    """Why gRPC could not listen on host:port: PortInUse when another socket holds it, else a BindError."""
    if port != 0 and port_in_use(host, port):
        return PortInUse(
            f"{host}:{port} is already in use (another enclavefl node?): stop that process or choose another --port"
        )
    return BindError(f"cannot listen on {host}:{port}: check the host name and the port")


def port_in_use(host: str, port: int) -> bool:
    """True if binding host:port fails with EADDRINUSE (a probe socket, closed at once)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False
