"""Issue 10 §5: `enclavefl receipts verify` tells an attested model from a chain anyone could have signed.

A genuine `model.receipts.json` comes from a real job: a node in this process over real gRPC and TLS, two data
owners in threads, and the model owner's `job submit/watch/download` commands. Each attack edits that file the
way someone claiming a model "came from the federation" would, and the verifier refuses it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from node_harness import Workspace, in_threads, model, numpy_owner, workspace
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.receipts import GENESIS_SHA256, RoundReceipt, sign_receipt
from enclavefl.tee.binding import compute_report_data, spki_sha256
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]


@dataclasses.dataclass(frozen=True)
class Download:
    receipts: Path
    model: Path


def run_job(ws: Workspace) -> Download:
    """A whole job, the model owner's CLI downloading the model and its receipts file at the end."""
    key, cert = ws.keys["model-owner"]
    node = ws.node()
    try:
        mo = [
            "--node",
            node.address,
            "--job",
            str(ws.job_file),
            "--policy",
            str(ws.policy_file),
            "--key",
            str(key),
            "--cert",
            str(cert),
        ]
        threads = list(in_threads(*(numpy_owner(ws, node.address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        assert runner.invoke(app, ["job", "submit", *mo, "--model", str(ws.model_file)]).exit_code == 0
        assert runner.invoke(app, ["job", "watch", *mo]).exit_code == 0
        out = ws.directory / "model.safetensors"
        downloaded = runner.invoke(app, ["job", "download", *mo, "--out", str(out)])
        assert downloaded.exit_code == 0, downloaded.output
        for thread in threads:
            thread.join(10)
    finally:
        node.stop(0)
    return Download(receipts=out.with_suffix(".receipts.json"), model=out)


def verify(ws: Workspace, receipts: Path, *extra: str, policy: Path | None = None) -> Any:
    return runner.invoke(app, ["receipts", "verify", str(receipts), "--policy", str(policy or ws.policy_file), *extra])


def edited(path: Path, edit: Any) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    out = path.with_name("forged.receipts.json")
    out.write_text(json.dumps(doc, indent=2))
    return out


def chain_for(
    key: ec.EllipticCurvePrivateKey, job_digest: bytes, final_sha256: bytes, rounds: int
) -> list[dict[str, str]]:
    """A well-formed receipt chain signed by `key` that ends with the model `final_sha256`."""
    previous, out = GENESIS_SHA256, []
    for r in range(1, rounds + 1):
        signed = sign_receipt(
            RoundReceipt(
                job_digest=job_digest,
                round=r,
                previous_sha256=previous,
                global_model_sha256=final_sha256,
                contributions=2,
                update_commitments=(secrets.token_bytes(32), secrets.token_bytes(32)),
            ),
            key,
        )
        out.append({"body": signed.body.decode(), "signature": signed.signature.hex(), "sha256": signed.sha256.hex()})
        previous = signed.sha256
    return out


def pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_a_genuine_receipts_file_verifies_with_its_model_and_job(workspace: Workspace) -> None:
    got = run_job(workspace)

    result = verify(workspace, got.receipts, "--model", str(got.model), "--job", str(workspace.job_file))

    assert result.exit_code == 0, result.output
    assert "node attested: MRENCLAVE" in result.output
    assert f"job digest {workspace.job.digest().hex()} (the agreed job)" in result.output
    assert "2 receipts signed by the attested key; contributions per round: 2, 2" in result.output
    assert "= the given model" in result.output
    doc = json.loads(got.receipts.read_text())
    assert doc["format"] == "enclavefl/receipt-chain/v2"
    assert set(doc["attestation"]) >= {"quote", "collateral_json", "node_spki_sha256", "job_digest", "nonce"}


def test_a_chain_re_signed_with_a_fresh_key_for_another_model_is_refused(workspace: Workspace) -> None:
    got = run_job(workspace)
    other_model = model(42.0)
    (workspace.directory / "other.safetensors").write_bytes(encode_weights(other_model))
    fresh = ec.generate_private_key(ec.SECP256R1())

    def swap_key_and_chain(doc: dict[str, Any]) -> None:
        doc["node_public_key_pem"] = pem(fresh)
        doc["receipts"] = chain_for(fresh, workspace.job.digest(), other_model.sha256(), workspace.job.rounds)
        doc["final_model_sha256"] = other_model.sha256().hex()

    forged = edited(got.receipts, swap_key_and_chain)
    # The chain alone is perfectly valid under the key the file names: that is what v1 files accepted.
    result = verify(workspace, forged, "--model", str(workspace.directory / "other.safetensors"))

    assert result.exit_code == 3, result.output
    assert "TlsKeyNotBound" in result.output  # the quote binds the node's key, not this one

    def keep_key_swap_chain(doc: dict[str, Any]) -> None:
        doc["receipts"] = chain_for(fresh, workspace.job.digest(), other_model.sha256(), workspace.job.rounds)
        doc["final_model_sha256"] = other_model.sha256().hex()

    result = verify(workspace, edited(got.receipts, keep_key_swap_chain))
    assert result.exit_code == 4, result.output
    assert "ReceiptError" in result.output and "does not verify under the node key" in result.output


def test_the_genuine_file_is_refused_for_another_model(workspace: Workspace) -> None:
    got = run_job(workspace)
    (workspace.directory / "other.safetensors").write_bytes(encode_weights(model(42.0)))

    result = verify(workspace, got.receipts, "--model", str(workspace.directory / "other.safetensors"))

    assert result.exit_code == 4, result.output
    assert "not the model the last receipt signs" in result.output


def test_evidence_for_another_job_digest_is_refused(workspace: Workspace) -> None:
    got = run_job(workspace)
    # 1. the verifier's agreed job is another job: the attested digest is not its digest
    other_job = workspace.directory / "other-job.toml"
    other_job.write_text(dump_job(dataclasses.replace(workspace.job, min_contributions=1)))
    result = verify(workspace, got.receipts, "--job", str(other_job))
    assert result.exit_code == 3, result.output
    assert "JobDigestMismatch" in result.output

    # 2. the file claims another job than the one the quote binds
    result = verify(workspace, edited(got.receipts, lambda d: d["attestation"].update(job_digest="ab" * 32)))
    assert result.exit_code == 3, result.output
    assert "ReportDataMismatch" in result.output

    # 3. a genuine quote for a key serving another job, and a chain that key signed for this job
    key, nonce, other_digest = ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(32), bytes(range(32))
    evidence = workspace.tee.evidence(
        compute_report_data(tls_spki_sha256=spki_sha256(key.public_key()), job_digest=other_digest, nonce=nonce)
    )
    final = model(2.0).sha256()

    def other_jobs_evidence(doc: dict[str, Any]) -> None:
        doc["node_public_key_pem"] = pem(key)
        doc["attestation"].update(
            quote=base64.b64encode(evidence.quote).decode(),
            collateral_json=evidence.collateral_json,
            node_spki_sha256=spki_sha256(key.public_key()).hex(),
            job_digest=other_digest.hex(),
            nonce=nonce.hex(),
        )
        doc["receipts"] = chain_for(key, workspace.job.digest(), final, workspace.job.rounds)
        doc["final_model_sha256"] = final.hex()

    result = verify(workspace, edited(got.receipts, other_jobs_evidence))
    assert result.exit_code == 4, result.output
    assert "receipt is for job" in result.output
    result = verify(workspace, edited(got.receipts, other_jobs_evidence), "--job", str(workspace.job_file))
    assert result.exit_code == 3, result.output
    assert "JobDigestMismatch" in result.output


def test_a_simulated_quote_is_refused_by_a_strict_policy(workspace: Workspace) -> None:
    got = run_job(workspace)
    mrenclave = workspace.policy.allowed_mrenclaves
    strict = workspace.directory / "strict-policy.toml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strict.write_text(AttestationPolicy(allowed_mrenclaves=mrenclave).to_toml())

    result = verify(workspace, got.receipts, policy=strict)

    assert result.exit_code == 3, result.output
    assert "SimulationNotAllowed" in result.output


def test_usage_errors_and_files_without_attestation(workspace: Workspace) -> None:
    got = run_job(workspace)

    missing_policy = verify(workspace, got.receipts, policy=workspace.directory / "nope.toml")
    old_format = verify(
        workspace, edited(got.receipts, lambda d: (d.pop("attestation"), d.update(format="enclavefl/receipt-chain/v1")))
    )
    current = verify(workspace, got.receipts)  # judged at the present by default

    assert missing_policy.exit_code == 2, missing_policy.output
    assert old_format.exit_code == 4 and "prove nothing about where a model came from" in old_format.output
    assert current.exit_code == 0, current.output  # fresh collateral: valid at the present time
    assert "evidence judged now" in current.output
