from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_DATA_OWNER: _ClassVar[Role]
    ROLE_MODEL_OWNER: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_DATA_OWNER: Role
ROLE_MODEL_OWNER: Role

class AttestRequest(_message.Message):
    __slots__ = ("nonce",)
    NONCE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    def __init__(self, nonce: _Optional[bytes] = ...) -> None: ...

class AttestationBundle(_message.Message):
    __slots__ = ("tee", "quote", "collateral_json", "node_spki_sha256", "job_digest", "node_public_key_pem")
    TEE_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    COLLATERAL_JSON_FIELD_NUMBER: _ClassVar[int]
    NODE_SPKI_SHA256_FIELD_NUMBER: _ClassVar[int]
    JOB_DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    tee: str
    quote: bytes
    collateral_json: str
    node_spki_sha256: bytes
    job_digest: bytes
    node_public_key_pem: bytes
    def __init__(self, tee: _Optional[str] = ..., quote: _Optional[bytes] = ..., collateral_json: _Optional[str] = ..., node_spki_sha256: _Optional[bytes] = ..., job_digest: _Optional[bytes] = ..., node_public_key_pem: _Optional[bytes] = ...) -> None: ...

class ChallengeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChallengeResponse(_message.Message):
    __slots__ = ("challenge",)
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    challenge: bytes
    def __init__(self, challenge: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("role", "name", "challenge", "signature")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    role: Role
    name: str
    challenge: bytes
    signature: bytes
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., name: _Optional[str] = ..., challenge: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("session", "replaced_sessions")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REPLACED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    session: bytes
    replaced_sessions: int
    def __init__(self, session: _Optional[bytes] = ..., replaced_sessions: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("seen", "wait_ms")
    SEEN_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    seen: NodeStatus
    wait_ms: int
    def __init__(self, seen: _Optional[_Union[NodeStatus, _Mapping]] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("round", "phase", "contributions", "rounds_total", "global_model_sha256", "attempt", "job_state", "job_message", "rounds_completed", "pending", "released_head_sha256", "global_model", "outside_cohort", "cohort_token")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    JOB_STATE_FIELD_NUMBER: _ClassVar[int]
    JOB_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RELEASED_HEAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_COHORT_FIELD_NUMBER: _ClassVar[int]
    COHORT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    round: int
    phase: str
    contributions: int
    rounds_total: int
    global_model_sha256: str
    attempt: int
    job_state: str
    job_message: str
    rounds_completed: int
    pending: SignedReceipt
    released_head_sha256: bytes
    global_model: bytes
    outside_cohort: bool
    cohort_token: bytes
    def __init__(self, round: _Optional[int] = ..., phase: _Optional[str] = ..., contributions: _Optional[int] = ..., rounds_total: _Optional[int] = ..., global_model_sha256: _Optional[str] = ..., attempt: _Optional[int] = ..., job_state: _Optional[str] = ..., job_message: _Optional[str] = ..., rounds_completed: _Optional[int] = ..., pending: _Optional[_Union[SignedReceipt, _Mapping]] = ..., released_head_sha256: _Optional[bytes] = ..., global_model: _Optional[bytes] = ..., outside_cohort: bool = ..., cohort_token: _Optional[bytes] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class UploadMetadata(_message.Message):
    __slots__ = ("round", "num_examples", "metrics", "total_bytes", "commitment_salt", "commitment", "wait_ms", "evaluation", "evaluation_examples")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EvaluationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_SALT_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    round: int
    num_examples: int
    metrics: _containers.ScalarMap[str, float]
    total_bytes: int
    commitment_salt: bytes
    commitment: bytes
    wait_ms: int
    evaluation: _containers.ScalarMap[str, float]
    evaluation_examples: int
    def __init__(self, round: _Optional[int] = ..., num_examples: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., total_bytes: _Optional[int] = ..., commitment_salt: _Optional[bytes] = ..., commitment: _Optional[bytes] = ..., wait_ms: _Optional[int] = ..., evaluation: _Optional[_Mapping[str, float]] = ..., evaluation_examples: _Optional[int] = ...) -> None: ...

class UploadPart(_message.Message):
    __slots__ = ("metadata", "data")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    metadata: UploadMetadata
    data: bytes
    def __init__(self, metadata: _Optional[_Union[UploadMetadata, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadAck(_message.Message):
    __slots__ = ("round", "payload_sha256", "status")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    round: int
    payload_sha256: bytes
    status: NodeStatus
    def __init__(self, round: _Optional[int] = ..., payload_sha256: _Optional[bytes] = ..., status: _Optional[_Union[NodeStatus, _Mapping]] = ...) -> None: ...

class ReceiptsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignedReceipt(_message.Message):
    __slots__ = ("body", "signature")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    signature: bytes
    def __init__(self, body: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ReceiptChain(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[SignedReceipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[SignedReceipt, _Mapping]]] = ...) -> None: ...

class PendingReceiptRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("round", "receipt_sha256", "signature")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    round: int
    receipt_sha256: bytes
    signature: bytes
    def __init__(self, round: _Optional[int] = ..., receipt_sha256: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class AcknowledgeAck(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: NodeStatus
    def __init__(self, status: _Optional[_Union[NodeStatus, _Mapping]] = ...) -> None: ...

class SubmitAck(_message.Message):
    __slots__ = ("model_sha256",)
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    model_sha256: str
    def __init__(self, model_sha256: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("after_round",)
    AFTER_ROUND_FIELD_NUMBER: _ClassVar[int]
    after_round: int
    def __init__(self, after_round: _Optional[int] = ...) -> None: ...

class RoundSummary(_message.Message):
    __slots__ = ("round", "contributions", "global_model_sha256", "metrics", "rejected", "evaluation")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class RejectedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class EvaluationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ROUND_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    round: int
    contributions: int
    global_model_sha256: str
    metrics: _containers.ScalarMap[str, float]
    rejected: _containers.ScalarMap[str, int]
    evaluation: _containers.ScalarMap[str, float]
    def __init__(self, round: _Optional[int] = ..., contributions: _Optional[int] = ..., global_model_sha256: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., rejected: _Optional[_Mapping[str, int]] = ..., evaluation: _Optional[_Mapping[str, float]] = ...) -> None: ...

class MaskingRequest(_message.Message):
    __slots__ = ("round", "step", "body")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    round: int
    step: str
    body: bytes
    def __init__(self, round: _Optional[int] = ..., step: _Optional[str] = ..., body: _Optional[bytes] = ...) -> None: ...

class MaskingReply(_message.Message):
    __slots__ = ("ready", "body")
    READY_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    body: bytes
    def __init__(self, ready: bool = ..., body: _Optional[bytes] = ...) -> None: ...
