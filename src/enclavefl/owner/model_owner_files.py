"""The model owner's files: the certificates a job enrolls, the final model and receipt chain it downloads.

    owners = read_owner_certificates(["alice=keys/alice.pem", "bob=keys/bob.pem"])   # for make_job(owners=...)
    ...
    final = download_final_model(session, out=Path("model.safetensors"), receipts_out=Path("receipts.json"))

The receipts file keeps every signed receipt body byte for byte, the node's public key and the attestation
evidence of that key (owner/provenance.py), so a third party can check that the model came from an attested
enclave running this job (`enclavefl receipts verify`, `verify_provenance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from enclavefl.core.codec import encode_weights
from enclavefl.core.receipt_checks import verify_receipt_chain
from enclavefl.core.receipts import RoundReceipt
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import ConfigError, ReceiptError
from enclavefl.owner.model_owner import FinalModel, ModelOwnerSession
from enclavefl.owner.provenance import attested_receipts, read_receipts_file, receipts_file_text


def read_owner_certificates(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=path/to/cert.pem` pairs -> {name: PEM text}; ConfigError names the bad pair."""
    owners: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--owner {pair!r}: expected NAME=CERTIFICATE.pem")
        if name in owners:
            raise ConfigError(f"--owner {pair!r}: {name!r} is enrolled twice")
        owners[name] = read_certificate(Path(path), f"--owner {name}")
    return owners


def require_readable(**files: Path) -> None:
    """ConfigError naming the option (`--key keys/bob.key: cannot read it: No such file or directory`) of the
    first file that cannot be opened: `require_readable(key=key, cert=cert)`."""
    for option, path in files.items():
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"--{option.replace('_', '-')} {path}: cannot read it: {exc.strerror or exc}") from None


def read_certificate(path: Path, what: str) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{what}: {path} is not a PEM certificate")
    return text


def download_final_model(session: ModelOwnerSession, *, out: Path, receipts_out: Path) -> FinalModel:
    """Download the final model (receipt chain and final hash verified), write it and the attested chain."""
    final = session.download_final()  # the node's last answer to us: it may exit once it handed the model out
    node = session.node
    document = attested_receipts(
        node.bundle, nonce=node.nonce, attested_at=node.attested_at, signed=final.signed, final=final.weights.sha256()
    )
    out.write_bytes(encode_weights(final.weights))
    receipts_out.write_text(receipts_file_text(document))
    return final


def verify_receipts_file(
    path: Path, *, job_digest: bytes, final: ModelWeights | None = None
) -> tuple[RoundReceipt, ...]:
    """Check a saved chain's signatures and links under the key the file names, for this job (and model).

    This says nothing about where the key came from: `owner.provenance.verify_provenance` (and
    `enclavefl receipts verify`) also checks the embedded attestation of that key against a policy.
    """
    document = read_receipts_file(path)
    receipts = verify_receipt_chain(document.receipts, document.node_public_key_pem, job_digest)
    if final is not None and (not receipts or receipts[-1].global_model_sha256 != final.sha256()):
        raise ReceiptError(f"{path}: the last receipt does not sign this model's hash")
    return receipts
