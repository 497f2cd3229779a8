"""Issue 22 item 7, the other direction: a host-controlled node (or a proxy in front of it) answers the data
owner's and the model owner's calls with arbitrary bytes.

A fake node over real TLS answers every RPC, unary or streaming, with the bytes hypothesis draws. Whatever it
sends, `connect_data_owner` and `ModelOwnerSession.connect` (attest first, then join) end with a precise
EnclaveFLError leaf (ProtocolError, QuoteFormatError, ...) in one line, never an unhandled DecodeError or a hang,
and send nothing but the attestation request: the owner never joins a node whose evidence did not verify.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_harness import Workspace, make_workspace

from enclavefl.errors import EnclaveFLError
from enclavefl.owner.attested import connect_data_owner
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.tls import private_key_pem, self_signed_certificate

pytestmark = pytest.mark.filterwarnings("ignore")


class GarbageNode(grpc.GenericRpcHandler):
    """Answers every method with `self.answer` (one message, or a stream of them); records what was called."""

    def __init__(self) -> None:
        self.answer: list[bytes] = [b""]
        self.called: list[str] = []
        self.lock = threading.Lock()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method  # type: ignore[attr-defined]
        with self.lock:
            self.called.append(method.rsplit("/", 1)[-1])
        answer = list(self.answer)
        streaming_out = method.endswith(("DownloadGlobalModel", "DownloadFinalModel", "Watch"))
        streaming_in = method.endswith(("UploadUpdate", "SubmitInitialModel"))

        def unary(request: object, context: object) -> bytes:
            return answer[0]

        def stream(request: object, context: object) -> Iterator[bytes]:
            yield from answer

        ident = {"request_deserializer": None, "response_serializer": None}
        if streaming_in:
            return grpc.stream_unary_rpc_method_handler(lambda it, ctx: answer[0], **ident)  # type: ignore[arg-type]
        if streaming_out:
            return grpc.unary_stream_rpc_method_handler(stream, **ident)  # type: ignore[arg-type]
        return grpc.unary_unary_rpc_method_handler(unary, **ident)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def garbage(
    tmp_path_factory: pytest.TempPathFactory, simulated_platform_dir: Path
) -> Iterator[tuple[GarbageNode, str, Workspace]]:
    from enclavefl.api.simulation import simulated_enclave

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = make_workspace(
            tmp_path_factory.mktemp("garbage"), simulated_platform_dir, simulated_enclave(simulated_platform_dir)
        )
    key = ec.generate_private_key(ec.SECP256R1())
    handler = GarbageNode()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    credentials = grpc.ssl_server_credentials([(private_key_pem(key), self_signed_certificate(key, common_name="x"))])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield handler, f"127.0.0.1:{port}", ws
    server.stop(0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=st.lists(st.binary(max_size=300), min_size=1, max_size=3), model_owner=st.booleans())
def test_garbage_answers_end_in_one_precise_error_and_nothing_is_sent(
    garbage: tuple[GarbageNode, str, Workspace], answer: list[bytes], model_owner: bool
) -> None:
    handler, address, ws = garbage
    handler.answer = answer
    with handler.lock:
        handler.called.clear()

    with pytest.raises(EnclaveFLError) as refused:
        if model_owner:
            ModelOwnerSession.connect(address, job=ws.job, policy=ws.policy, credentials=ws.credentials("model-owner"))
        else:
            connect_data_owner(address, name="alice", job=ws.job, policy=ws.policy, credentials=ws.credentials("alice"))

    assert "\n" not in str(refused.value).strip()
    assert set(handler.called) <= {"Attest"}, handler.called  # nothing but the attestation request
