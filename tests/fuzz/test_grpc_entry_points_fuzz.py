"""Issue 22 item 7: malformed protobuf messages at every entry point of the node, over real gRPC and TLS.

For every RPC the node serves, arbitrary bytes arrive as the request (unary) or as a stream of request frames
(streaming), once without a session and once with a valid data owner's session token. The node must answer each
with a status code it chose (INVALID_ARGUMENT, UNAUTHENTICATED, FAILED_PRECONDITION, ...), never UNKNOWN or
INTERNAL (an exception escaping a handler), and keep serving: an honest owner's Status works afterwards.
Malformed safetensors inside well-formed messages are covered by test_decoders_fuzz.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_harness import Workspace, make_workspace

from enclavefl.enclave.node import AggregatorNode
from enclavefl.owner.attested import AttestedNode, connect_data_owner
from enclavefl.transport.auth import SESSION_METADATA_KEY
from enclavefl.transport.proto import enclavefl_pb2 as pb
from enclavefl.transport.tls import NODE_TLS_NAME

pytestmark = pytest.mark.filterwarnings("ignore")
SERVICE = pb.DESCRIPTOR.services_by_name["Node"]
METHODS = [(m.name, m.client_streaming, m.server_streaming) for m in SERVICE.methods]
HANDLED = {  # codes a handler chooses; UNKNOWN and INTERNAL mean an exception escaped it
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # a long poll or a wait for the seal that the short deadline cut
}

# grpcio answers a request that does not parse as its message type with INTERNAL and these details, before any of
# the node's code runs (and logs the parse error): the node is not reached, so it is counted as refused input.
UNDECODABLE = "Exception deserializing request!"


class Fuzzed:
    def __init__(self, tmp: Path, platform: Path) -> None:
        from enclavefl.api.simulation import simulated_enclave

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.ws: Workspace = make_workspace(tmp, platform, simulated_enclave(platform))
        self.node: AggregatorNode = self.ws.node()
        self.alice: AttestedNode = connect_data_owner(
            self.node.address,
            name="alice",
            job=self.ws.job,
            policy=self.ws.policy,
            credentials=self.ws.credentials("alice"),
        )
        credentials = grpc.ssl_channel_credentials(root_certificates=self.alice.client.pinned_certificate_pem)
        self.channel = grpc.secure_channel(
            self.node.address, credentials, options=[("grpc.ssl_target_name_override", NODE_TLS_NAME)]
        )
        self.session = self.alice.client._session

    def call(
        self, method: str, client_streaming: bool, server_streaming: bool, frames: list[bytes], auth: bool
    ) -> grpc.StatusCode:
        path = f"/enclavefl.v1.Node/{method}"
        metadata = ((SESSION_METADATA_KEY, self.session),) if auth and self.session else ()
        identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            if client_streaming and server_streaming:
                for _ in self.channel.stream_stream(path, **identity)(iter(frames), metadata=metadata, timeout=2.0):
                    pass
            elif client_streaming:
                self.channel.stream_unary(path, **identity)(iter(frames), metadata=metadata, timeout=2.0)
            elif server_streaming:
                for _ in self.channel.unary_stream(path, **identity)(frames[0], metadata=metadata, timeout=2.0):
                    pass
            else:
                self.channel.unary_unary(path, **identity)(frames[0], metadata=metadata, timeout=2.0)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INTERNAL and exc.details() == UNDECODABLE:  # type: ignore[attr-defined]
                return grpc.StatusCode.INVALID_ARGUMENT  # grpc's own answer before any handler runs
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, simulated_platform_dir: Path) -> Iterator[Fuzzed]:
    target = Fuzzed(tmp_path_factory.mktemp("fuzzed-node"), simulated_platform_dir)
    yield target
    target.channel.close()
    target.node.stop(0)


@pytest.mark.parametrize(("method", "client_streaming", "server_streaming"), METHODS, ids=[m[0] for m in METHODS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.binary(max_size=256), min_size=1, max_size=4), auth=st.booleans())
def test_every_rpc_answers_garbage_with_a_chosen_status_and_the_node_goes_on(
    fuzzed: Fuzzed, method: str, client_streaming: bool, server_streaming: bool, frames: list[bytes], auth: bool
) -> None:
    code = fuzzed.call(method, client_streaming, server_streaming, frames, auth)

    assert code in HANDLED, f"{method} answered {code} to {frames!r}: an exception escaped the handler"
    assert fuzzed.alice.client.node_status().round >= 0  # the node still serves an honest owner


# --- malformed safetensors inside a well-formed upload, through the real client and node ----------------------
def _header(text: bytes) -> bytes:
    return len(text).to_bytes(8, "little") + text


SAFETENSORS_GARBAGE = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=200).map(_header),  # a length that fits and a header that is not JSON
    st.sampled_from(
        [
            (2**63).to_bytes(8, "little"),  # a header length beyond any buffer
            _header(b'{"weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,999999]}}'),  # offsets past the end
            _header(b'{"weight":{"dtype":"F32","shape":[1,2],"data_offsets":[4,0]}}') + bytes(8),  # reversed
            _header(b'{"weight":{"dtype":"F64","shape":[1,2],"data_offsets":[0,16]}}') + bytes(16),  # wrong dtype
            _header(b'{"__metadata__":{"x":"y"},"bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}') + bytes(4),
            _header(b'{"weight":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}}') + bytes(8),  # negative dim
        ]
    ),
)


@pytest.fixture(scope="module")
def open_round(tmp_path_factory: pytest.TempPathFactory, simulated_platform_dir: Path) -> Iterator[Fuzzed]:
    from enclavefl.core.jobfile import read_initial_model

    target = Fuzzed(tmp_path_factory.mktemp("open-round"), simulated_platform_dir)
    target.node.stop(0)
    target.node = target.ws.node(initial_model=read_initial_model(target.ws.model_file))
    target.alice = connect_data_owner(
        target.node.address,
        name="alice",
        job=target.ws.job,
        policy=target.ws.policy,
        credentials=target.ws.credentials("alice"),
    )
    yield target
    target.node.stop(0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=SAFETENSORS_GARBAGE)
def test_a_malformed_safetensors_upload_is_refused_precisely_and_the_round_goes_on(
    open_round: Fuzzed, payload: bytes
) -> None:
    from enclavefl.core.update_message import UpdateMessage
    from enclavefl.errors import UpdateRejected

    client = open_round.alice.client
    status = client.node_status()
    with pytest.raises(UpdateRejected) as refused:  # MalformedUpdate, MissingTensor, ...: the node decoded and refused
        client.upload_update(UpdateMessage.of(owner="alice", round=status.round, num_examples=1, payload=payload))

    assert "\n" not in str(refused.value)  # one line
    after = client.node_status()
    assert (after.round, after.phase, after.contributions) == (status.round, status.phase, 0)  # nothing counted
