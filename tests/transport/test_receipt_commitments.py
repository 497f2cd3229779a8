"""Issue 10 §4: a receipt is no dictionary oracle, yet each owner can still check and prove its inclusion.

The attacker holds the signed receipt (the model owner, or the operator colluding with it) and knows the
victim's update is one of a few exact candidates: training is deterministic given the global model, the
data and the public job configuration, so "dataset D or D ∪ {x}" becomes "payload P_D or P_Dx". With plain
payload hashes in the receipt it would hash both and read the answer. With salted commitments it cannot.
Everything runs over real gRPC and TLS against a real node.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
from transport_harness import CHUNK, Federation, model, sign_sealed_round, update

from enclavefl.core.codec import encode_weights
from enclavefl.core.commitments import update_commitment
from enclavefl.core.receipt_checks import check_update_included
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.update_message import UpdateMessage, commitment_of_payload, new_commitment_salt
from enclavefl.errors import CommitmentMismatch, UpdateOmitted
from enclavefl.owner.attested import AttestedNode
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.transport.proto import enclavefl_pb2 as pb

pytestmark = pytest.mark.filterwarnings("ignore")
CANDIDATE_D = encode_weights(model(1.0))  # what alice's update would be if trained on D
CANDIDATE_DX = encode_weights(model(1.5))  # ... on D ∪ {x}: the one she actually sends


def wait_round(node: object, round_index: int, *, completed: bool = False) -> None:
    while True:
        st = node.node_status()  # type: ignore[attr-defined]
        if (
            (st.rounds_completed >= round_index)
            if completed
            else (st.phase.value == "open" and st.round == round_index)
        ):
            return
        threading.Event().wait(0.02)


def raw_upload(owner: AttestedNode, payload: bytes, *, salt: bytes, commitment: bytes) -> bytes:
    """An upload whose metadata the test writes itself (what a modified client could send)."""
    meta = pb.UploadMetadata(round=1, num_examples=1, commitment_salt=salt, commitment=commitment)

    def parts() -> Iterator[pb.UploadPart]:
        yield pb.UploadPart(metadata=meta)
        yield pb.UploadPart(data=payload)

    client = owner.client
    ack = client._call(lambda: client._upload(parts(), **client._kw()))
    return bytes(ack.payload_sha256)


def run_round_one(federation: Federation) -> tuple[RoundReceipt, UpdateMessage, bytes]:
    """alice sends the D ∪ {x} update, bob and carol others; returns the receipt the colluder reads."""
    node = federation.node()
    owners = {name: federation.connect(node, name) for name in ("alice", "bob", "carol")}
    colluder = ModelOwnerSession.connect(
        node.address,
        job=federation.job,
        policy=federation.policy,
        credentials=federation.model_owner,
        chunk_bytes=CHUNK,
    )
    wait_round(node, 1)
    alices = UpdateMessage.of(owner="alice", round=1, num_examples=1, payload=CANDIDATE_DX)
    folded_sha256 = owners["alice"].client.upload_update(alices)
    owners["bob"].client.upload_update(update("bob", 1, 2.0))
    owners["carol"].client.upload_update(update("carol", 1, 3.0))
    sign_sealed_round(node, owners, 1)
    wait_round(node, 1, completed=True)
    (receipt, *_) = colluder.receipts()
    colluder.close()
    return receipt, alices, folded_sha256


def test_a_receipt_holder_cannot_tell_which_candidate_dataset_was_used(federation: Federation) -> None:
    receipt, alices, folded_sha256 = run_round_one(federation)

    # The attacker's reconstruction is exact: the node folded bytes whose SHA-256 is the candidate's. Under the
    # old receipts (plain payload hashes) this one comparison would have answered "D ∪ {x}".
    assert folded_sha256 == hashlib.sha256(CANDIDATE_DX).digest()
    listed = set(receipt.update_commitments)
    assert len(listed) == receipt.contributions == 3
    for candidate in (CANDIDATE_D, CANDIDATE_DX):
        digest = hashlib.sha256(candidate).digest()
        assert digest not in listed
        # nor under any salt the attacker could guess: the salt is 32 random bytes it never sees
        for guess in (bytes(32), b"\xff" * 32, new_commitment_salt()):
            assert update_commitment(salt=guess, payload_sha256=digest) not in listed
    assert alices.header.commitment_salt not in receipt.canonical_bytes()
    assert alices.header.commitment_salt.hex().encode() not in receipt.canonical_bytes()

    # alice, who keeps the salt, finds her update; shown the salt and payload, so can anyone she chooses.
    check_update_included(receipt, alices.header.commitment)
    check_update_included(receipt, commitment_of_payload(salt=alices.header.commitment_salt, payload=CANDIDATE_DX))
    # ... and the opening is binding: her salt does not make the other candidate "included".
    with pytest.raises(UpdateOmitted):
        check_update_included(receipt, commitment_of_payload(salt=alices.header.commitment_salt, payload=CANDIDATE_D))


def test_the_enclave_refuses_a_commitment_to_other_bytes_and_the_round_goes_on(federation: Federation) -> None:
    node = federation.node()
    alice, bob = federation.connect(node, "alice"), federation.connect(node, "bob")
    wait_round(node, 1)
    salt = new_commitment_salt()

    # A commitment to P_D sent with the bytes of P_Dx: the receipt would claim the wrong inclusion.
    with pytest.raises(CommitmentMismatch, match="commits to other bytes"):
        raw_upload(alice, CANDIDATE_DX, salt=salt, commitment=commitment_of_payload(salt=salt, payload=CANDIDATE_D))
    # An upload without a salt (a client from before commitments) is refused before any byte is read.
    with pytest.raises(CommitmentMismatch, match="32-byte commitment salt"):
        raw_upload(alice, CANDIDATE_DX, salt=b"", commitment=b"")
    assert node.node_status().contributions == 0  # nothing was folded

    # The refusals cost alice nothing: her correct upload is accepted, and the round closes with it.
    good = raw_upload(alice, CANDIDATE_DX, salt=salt, commitment=commitment_of_payload(salt=salt, payload=CANDIDATE_DX))
    assert good == hashlib.sha256(CANDIDATE_DX).digest()
    bob.client.upload_update(update("bob", 1, 2.0))
    assert node.node_status().contributions == 2
