"""Issue 22 item 5: `receipts verify` judges a model's evidence at the present by default, not at the time the
model owner wrote into the file.

The attack: a platform passes attestation, the job runs, the model owner keeps `model.receipts.json`. Later the
platform's TCB is revoked (or the collateral in the file simply expires). Someone hands the file around as proof
that the model came from a trustworthy enclave. On the old code, `receipts verify FILE --policy P` with default
flags judged the evidence at `attested_at` (a time the file itself states) with the collateral the file itself
carries, so it kept saying "verified" forever. Now the default judges at the present: expired collateral is
refused with a hint to pass current collateral, and current collateral that rates the platform Revoked is
refused; judging as of the attestation time is an explicit, INSECURE-named opt-in.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from node_harness import Workspace, in_threads, numpy_owner, workspace
from typer.testing import CliRunner, Result

from enclavefl.cli.main import app
from enclavefl.cli.when import parse_verification_time
from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import ConfigError
from enclavefl.tee.insecure._pki import load_hierarchy
from enclavefl.tee.insecure.simulation import SimulatedPlatform

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()
__all__ = ["workspace"]
DAY = 86_400


def receipts_of_a_job(ws: Workspace) -> Path:
    """A whole job over gRPC/TLS; the model owner's CLI downloads the model and its receipts file."""
    key, cert = ws.keys["model-owner"]
    node = ws.node()
    try:
        mo = ["--node", node.address, "--job", str(ws.job_file), "--policy", str(ws.policy_file)]
        mo += ["--key", str(key), "--cert", str(cert)]
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
    return out.with_suffix(".receipts.json")


def verify_later(ws: Workspace, receipts: Path, days: int, *extra: str, monkeypatch: pytest.MonkeyPatch) -> Result:
    """`receipts verify` run by a verifier whose clock reads `days` after now (the default flags otherwise)."""
    later = time.time() + days * DAY
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: later)
        return runner.invoke(app, ["receipts", "verify", str(receipts), "--policy", str(ws.policy_file), *extra])


def collateral_revoking_the_platform(platform_dir: Path, *, at: int) -> str:
    """Current collateral as Intel would publish it after revoking this platform's TCB level (signed by the
    simulated platform's TCB signer, the key a real verifier would find under Intel's root)."""
    platform = SimulatedPlatform.load(platform_dir)
    bundle = json.loads(platform.collateral_json(now=at))
    info = json.loads(bundle["tcb_info"])
    for level in info["tcbLevels"]:  # every level, the platform's included, is now Revoked
        level["tcbStatus"], level["advisoryIDs"] = "Revoked", ["INTEL-SA-99999"]
    text = json.dumps(info, separators=(",", ":"))
    r, s = decode_dss_signature(
        load_hierarchy(platform_dir).tcb_signing_key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    )
    bundle["tcb_info"], bundle["tcb_info_signature"] = text, (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()
    return json.dumps(bundle)


def test_a_file_whose_collateral_expired_is_refused_by_default(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipts = receipts_of_a_job(workspace)

    today = verify_later(workspace, receipts, 0, monkeypatch=monkeypatch)
    in_forty_days = verify_later(workspace, receipts, 40, monkeypatch=monkeypatch)
    historical = verify_later(workspace, receipts, 40, "--insecure-at-attestation-time", monkeypatch=monkeypatch)

    # Old code: exit 0, judged at the attested_at the file states.
    assert in_forty_days.exit_code == ExitCode.ATTESTATION_REFUSED, in_forty_days.output
    assert "CollateralExpired" in in_forty_days.output
    assert "--collateral FILE or --pccs-url URL" in in_forty_days.output
    assert today.exit_code == 0, today.output
    assert "evidence judged now" in today.output
    assert historical.exit_code == 0, historical.output
    assert "INSECURE: judging the evidence as of when the model owner attested" in historical.output


def test_a_platform_revoked_since_the_job_is_refused_with_current_collateral(
    workspace: Workspace, simulated_platform_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    receipts = receipts_of_a_job(workspace)
    current = tmp_path / "current-collateral.json"
    current.write_text(collateral_revoking_the_platform(simulated_platform_dir, at=int(time.time()) + 10 * DAY))

    revoked = verify_later(workspace, receipts, 10, "--collateral", str(current), monkeypatch=monkeypatch)
    blind = verify_later(workspace, receipts, 10, "--insecure-at-attestation-time", monkeypatch=monkeypatch)

    assert revoked.exit_code == ExitCode.ATTESTATION_REFUSED, revoked.output
    assert "TcbStatusRefused" in revoked.output and "Revoked" in revoked.output
    assert blind.exit_code == 0, blind.output  # the opt-in does not see it: named so


def test_one_now_value_means_the_same_moment_in_attest_verify_and_receipts_verify(
    workspace: Workspace, tmp_path: Path
) -> None:
    receipts = receipts_of_a_job(workspace)
    moment = int(time.time()) + 40 * DAY
    iso = dt.datetime.fromtimestamp(moment, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = json.loads(receipts.read_text())
    quote, collateral = tmp_path / "quote.bin", tmp_path / "collateral.json"
    quote.write_bytes(base64.b64decode(doc["attestation"]["quote"]))
    collateral.write_text(doc["attestation"]["collateral_json"])

    outcomes = []
    for value in (str(moment), iso, iso.removesuffix("Z")):
        r = runner.invoke(
            app, ["receipts", "verify", str(receipts), "--policy", str(workspace.policy_file), "--now", value]
        )
        a = runner.invoke(
            app,
            [
                "attest",
                "verify",
                str(quote),
                "--collateral",
                str(collateral),
                "--policy",
                str(workspace.policy_file),
                "--now",
                value,
            ],
        )
        outcomes.append((r.exit_code, a.exit_code, "CollateralExpired" in r.output, "CollateralExpired" in a.output))

    assert parse_verification_time(str(moment)) == parse_verification_time(iso) == moment
    assert outcomes == [(ExitCode.ATTESTATION_REFUSED, ExitCode.ATTESTATION_REFUSED, True, True)] * 3
    with pytest.raises(ConfigError, match="expected unix seconds"):
        parse_verification_time("next tuesday")
