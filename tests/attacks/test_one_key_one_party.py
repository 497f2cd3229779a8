"""Issue 22 item 6 (enrolment half): one key enrolled under two names is refused by `job init` and by every party
that loads such a job file (data owner, node), before anything is sent or served.

The attack: the model owner enrolls one certificate as "alice" and as "mallory". Both names then authenticate
with alice's key, so one party counts twice towards K, and two processes holding that key race each other's
uploads (the real owner silently loses rounds to DuplicateUpdate/WrongRound).
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from enclavefl.cli.main import app
from enclavefl.core.codec import encode_weights
from enclavefl.core.exit_codes import ExitCode
from enclavefl.core.job import DataOwnerSpec, JobSpec, TrainConfig
from enclavefl.core.jobfile import load_job
from enclavefl.core.jobfile_write import dump_job
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import DuplicateEnrolment
from enclavefl.transport.owner_tls import OwnerCredentials

pytestmark = pytest.mark.filterwarnings("ignore")
runner = CliRunner()


def unused_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed again: nobody listens there


def second_certificate_for(credentials: OwnerCredentials, common_name: str) -> str:
    """Another self-signed certificate over the same key (a different PEM, one party)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(credentials.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(credentials.private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name in ("alice", "bob", "model-owner"):
        out[f"{name}.key"], out[f"{name}.pem"] = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
        OwnerCredentials.generate(name).save(out[f"{name}.key"], out[f"{name}.pem"])
    model = ModelWeights({"w": __import__("numpy").zeros((2,), "float32")})
    out["model"] = tmp_path / "init.safetensors"
    out["model"].write_bytes(encode_weights(model))
    return out


def job_init(files: dict[str, Path], out: Path, *owners: str) -> tuple[int, str]:
    args = ["job", "init", "--name", "j", "--model", str(files["model"]), "--out", str(out)]
    args += ["--model-owner-cert", str(files["model-owner.pem"])]  # required: a job nobody can submit is refused
    for owner in owners:
        args += ["--owner", owner]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def test_job_init_refuses_one_certificate_enrolled_under_two_names(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "job.toml"

    code, output = job_init(files, out, f"alice={files['alice.pem']}", f"mallory={files['alice.pem']}")

    assert code == ExitCode.CONFIG, output
    assert "DuplicateEnrolment" in output and "'alice'" in output and "'mallory'" in output
    assert not out.exists()


def test_job_init_refuses_two_certificates_over_one_key(files: dict[str, Path], tmp_path: Path) -> None:
    alice = OwnerCredentials.load(files["alice.key"], files["alice.pem"])
    other = tmp_path / "alice-again.pem"
    other.write_text(second_certificate_for(alice, "mallory"))
    out = tmp_path / "job.toml"

    code, output = job_init(files, out, f"alice={files['alice.pem']}", f"mallory={other}")

    assert code == ExitCode.CONFIG, output
    assert "DuplicateEnrolment" in output
    assert not out.exists()


def test_two_owners_with_their_own_keys_are_enrolled(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "job.toml"

    code, output = job_init(files, out, f"alice={files['alice.pem']}", f"bob={files['bob.pem']}")

    assert code == 0, output
    assert [o.name for o in load_job(out).data_owners] == ["alice", "bob"]


def duplicate_job_file(files: dict[str, Path], tmp_path: Path) -> Path:
    """A job file written by hand (not by `job init`) that enrolls alice's certificate as bob too."""
    honest = JobSpec(
        name="j",
        rounds=1,
        train=TrainConfig(local_steps=1),
        data_owners=tuple(
            DataOwnerSpec(name=n, certificate_pem=files[f"{n}.pem"].read_text()) for n in ("alice", "bob")
        ),
    )
    text = dump_job(honest).replace(
        files["bob.pem"].read_text().strip().replace("\n", "\\n"),
        files["alice.pem"].read_text().strip().replace("\n", "\\n"),
    )
    assert text != dump_job(honest)  # the substitution happened
    path = tmp_path / "duplicate.toml"
    path.write_text(text)
    return path


def test_a_job_file_enrolling_one_key_twice_does_not_load(files: dict[str, Path], tmp_path: Path) -> None:
    path = duplicate_job_file(files, tmp_path)

    with pytest.raises(DuplicateEnrolment, match="'alice' and 'bob' are enrolled with the same key"):
        load_job(path)


def test_a_data_owner_refuses_such_a_job_before_contacting_the_node(files: dict[str, Path], tmp_path: Path) -> None:
    path = duplicate_job_file(files, tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text('mrenclave = ["' + "00" * 32 + '"]\n')
    args = ["data-owner", "run", "--node", unused_address(), "--job", str(path), "--policy", str(policy)]
    args += ["--task", "enclavefl.demos.seed:make_task", "--data", str(tmp_path / "none")]
    args += ["--key", str(files["alice.key"]), "--cert", str(files["alice.pem"]), "--connect-timeout", "0"]

    result = runner.invoke(app, args)

    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "DuplicateEnrolment" in result.output


@pytest.mark.slow
def test_a_node_refuses_to_serve_such_a_job(files: dict[str, Path], tmp_path: Path) -> None:
    path = duplicate_job_file(files, tmp_path)
    args = [sys.executable, "-m", "enclavefl.cli.main", "node", "serve", "--job", str(path)]
    args += ["--tee", "insecure-simulation", "--platform-dir", str(tmp_path / "platform"), "--port", "0"]

    # a node that accepted the job would serve until killed: the timeout turns that into a failure
    done = subprocess.run([*args, "--ephemeral"], capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert "DuplicateEnrolment" in done.stderr
