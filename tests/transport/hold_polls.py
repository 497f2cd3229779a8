"""Owners that join a node and keep one Status long poll each in flight (a process of its own: its threads and
connections are not the node's).

    python hold_polls.py ADDRESS CERT_PEM JOB_DIGEST_HEX KEY_DIR NAME...

Prints "joined N" once every owner joined, then keeps a long poll per owner in flight until stdin closes.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import grpc

from enclavefl.transport import wire
from enclavefl.transport.auth import Role
from enclavefl.transport.grpc_client import NodeClient
from enclavefl.transport.owner_tls import OwnerCredentials
from enclavefl.transport.proto import enclavefl_pb2 as pb


def hold(client: NodeClient, seen: pb.NodeStatus) -> None:
    """One long poll in flight; when it is answered (or refused), another."""
    request = pb.StatusRequest(seen=seen, wait_ms=5000)
    future = client._stub.Status.future(request, **client._kw(30.0))

    def again(done: grpc.Future) -> None:
        if not stopping.is_set():
            hold(client, seen)

    future.add_done_callback(again)


stopping = threading.Event()


def main() -> None:
    address, cert, digest, key_dir, *names = sys.argv[1:]
    pem = Path(cert).read_bytes()
    clients = []
    for name in names:
        credentials = OwnerCredentials.load(Path(key_dir) / f"{name}.key", Path(key_dir) / f"{name}.pem")
        client = NodeClient(address, certificate_pem=pem, timeout=30.0)
        client.join(
            role=Role.DATA_OWNER, name=name, private_key=credentials.private_key, job_digest=bytes.fromhex(digest)
        )
        clients.append(client)
    for client in clients:
        hold(client, wire.status_to_proto(client.node_status()))
    print(f"joined {len(clients)}", flush=True)
    sys.stdin.read()  # until the test closes it
    stopping.set()
    for client in clients:
        client.close()


if __name__ == "__main__":
    main()
