"""A small global model that comes inside the round's status is used only if it is the model the status names."""

from __future__ import annotations

import numpy as np
import pytest

from enclavefl.core.codec import encode_weights
from enclavefl.core.messages import RoundPhase
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ProtocolError
from enclavefl.owner.data_owner_loop import carried_model
from enclavefl.transport.api import JobState, NodeStatus


def status_with(model: bytes, named: ModelWeights) -> NodeStatus:
    return NodeStatus(
        round=3,
        phase=RoundPhase.OPEN,
        contributions=0,
        rounds_total=5,
        global_model_sha256=named.sha256().hex(),
        attempt=1,
        rounds_completed=2,
        job_state=JobState.RUNNING,
        global_model=model,
    )


def weights(value: float) -> ModelWeights:
    return ModelWeights({"w": np.full((2, 3), value, np.float32)})


def test_the_named_model_is_used_and_a_status_without_one_means_download() -> None:
    payload = encode_weights(weights(1.0))
    assert carried_model(status_with(payload, weights(1.0))) == payload
    assert carried_model(status_with(b"", weights(1.0))) is None


def test_another_model_than_the_one_named_is_refused() -> None:
    with pytest.raises(ProtocolError, match=r"whose digest .* is not the"):
        carried_model(status_with(encode_weights(weights(2.0)), weights(1.0)))
    with pytest.raises(ProtocolError, match="malformed model"):
        carried_model(status_with(b"junk", weights(1.0)))
