"""The node's gRPC server: TLS with the attested key, every method of the `Node` service registered.

    server = NodeServer(node, private_key=identity.private_key, host="127.0.0.1", port=0).start()
    server.address                   # "127.0.0.1:PORT"; data owners pin `server.certificate_pem` before attesting

The handlers are transport/grpc_servicer.py's; the node behind them is any NodeService (enclave/node.py).
"""

from __future__ import annotations

import errno
import logging
import socket
from concurrent import futures

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from enclavefl.errors import BindError, PortInUse
from enclavefl.tee.binding import spki_sha256
from enclavefl.transport import wire
from enclavefl.transport.api import NodeService
from enclavefl.transport.auth import JoinAuthority
from enclavefl.transport.grpc_servicer import DOWNLOADS, PARSERS, NodeServicer
from enclavefl.transport.limits import CallGate, NodeLimits
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.tls import private_key_pem, self_signed_certificate

log = logging.getLogger(__name__)

_HANDLER_KINDS = {  # (client streaming, server streaming) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _add_servicer(servicer: NodeServicer, server: grpc.Server) -> None:
    """Register every method of the proto's `Node` service, read from its descriptor.

    Not through the generated `enclavefl_pb2_grpc` module: it is mostly client stubs, which the enclave never
    runs, so the enclave's TCB carries only the message classes. Uploads are parsed by wire.parse_upload_part
    (no payload copies).
    """
    service = pb.DESCRIPTOR.services_by_name["Node"]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request, response = getattr(pb, method.input_type.name), getattr(pb, method.output_type.name)
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        parse = PARSERS.get(method.name, request.FromString)
        serialize = wire.serialize_chunk if method.name in DOWNLOADS else response.SerializeToString
        handlers[method.name] = kind(
            getattr(servicer, method.name), request_deserializer=parse, response_serializer=serialize
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


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
        max_workers: int = 32,
        limits: NodeLimits | None = None,
    ) -> None:
        limits = (limits or NodeLimits()).for_threads(max_workers)
        self.certificate_pem = self_signed_certificate(private_key, common_name="enclavefl aggregator node")
        self.authority = JoinAuthority(
            job=node.job,
            node_spki_sha256=spki_sha256(private_key.public_key()),
            session_lifetime_seconds=limits.session_lifetime_seconds,
        )
        self.gate = CallGate(limits)
        self.servicer = NodeServicer(node, self.authority, chunk_bytes=chunk_bytes, gate=self.gate)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="enclavefl-rpc"),
            # No SO_REUSEPORT: with it a second node on the same port also binds, and the kernel then splits
            # clients between two nodes with different keys and jobs (random JobDigestMismatch for everyone).
            options=[*wire.channel_options(chunk_bytes), ("grpc.so_reuseport", 0)],
        )
        _add_servicer(self.servicer, self._server)
        # The key goes to gRPC as bytes in memory; it is never written anywhere.
        credentials = grpc.ssl_server_credentials([(private_key_pem(private_key), self.certificate_pem)])
        self.host = host
        try:
            self.port: int = self._server.add_secure_port(f"{host}:{port}", credentials)
        except RuntimeError:  # newer grpcio raises where older ones return 0
            self.port = 0
        if self.port == 0:
            raise bind_error(host, port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> NodeServer:
        self._server.start()
        log.info("node serving on %s", self.address)
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace).wait()

    def cancel_active_uploads(self) -> int:
        return self.servicer.cancel_active_uploads()


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
