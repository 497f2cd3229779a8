"""Cohorts over real gRPC and TLS: each data owner's status carries its own cohort claim and token, and an upload
from an owner outside the round's cohort is refused with its class (NotInCohort) across the wire."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from transport_harness import OWNERS, Federation, update

from enclavefl.core.messages import RoundPhase
from enclavefl.errors import NotInCohort

pytestmark = pytest.mark.filterwarnings("ignore")


def test_each_owner_hears_its_own_claim_and_an_outsider_cannot_upload(
    federation_factory: Callable[..., Federation],
) -> None:
    fed = federation_factory(clients_per_round=2, min_contributions=1)
    node = fed.node()
    owners = {name: fed.connect(node, name) for name in OWNERS}
    deadline = time.monotonic() + 10
    while node.node_status().phase is not RoundPhase.OPEN:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    statuses = {name: attested.client.node_status() for name, attested in owners.items()}
    model_owner_view = node.node_status()

    outside = [name for name, st in statuses.items() if st.outside_cohort]
    assert len(outside) == 1 and all(st.round == 1 for st in statuses.values())
    tokens = {st.cohort_token for st in statuses.values()}
    assert len(tokens) == 3 and all(len(t) == 32 for t in tokens)  # each owner's own, none shared
    assert node.worker is not None and node.worker.cohorts is not None
    for name, st in statuses.items():  # what the wire carried is what the enclave drew
        assert (not st.outside_cohort, st.cohort_token) == node.worker.cohorts.claim(1, name)
    assert model_owner_view.cohort_token == b"" and not model_owner_view.outside_cohort

    with pytest.raises(NotInCohort, match="not in the cohort"):
        owners[outside[0]].client.upload_update(update(outside[0], 1, 1.0))
    for attested in owners.values():
        attested.client.close()
