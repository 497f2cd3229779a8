"""A PCCS stand-in on loopback: serves one QuoteCollateralV3 bundle through the PCCS v4 endpoints dcap-qvl reads.

Endpoints and formats as dcap-qvl's collateral client expects them (src/collateral.rs): pckcrl (DER body, issuer
chain in SGX-PCK-CRL-Issuer-Chain), tcb (JSON {tcbInfo, signature}, TCB-Info-Issuer-Chain), qe/identity (JSON
{enclaveIdentity, signature}, SGX-Enclave-Identity-Issuer-Chain), rootcacrl (hex text). Headers URL-encoded.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager


class FakePccs:
    def __init__(self, collateral_json: str) -> None:
        self.collateral_json = collateral_json
        self.requests: list[str] = []
        self.fail = False  # answer 503 to everything (a PCCS that is down)

    def responses(self) -> dict[str, tuple[bytes, dict[str, str]]]:
        c = json.loads(self.collateral_json)
        quote = urllib.parse.quote
        return {
            "pckcrl": (bytes.fromhex(c["pck_crl"]), {"SGX-PCK-CRL-Issuer-Chain": quote(c["pck_crl_issuer_chain"])}),
            "tcb": (
                f'{{"tcbInfo":{c["tcb_info"]},"signature":"{c["tcb_info_signature"]}"}}'.encode(),
                {"TCB-Info-Issuer-Chain": quote(c["tcb_info_issuer_chain"])},
            ),
            "qe/identity": (
                f'{{"enclaveIdentity":{c["qe_identity"]},"signature":"{c["qe_identity_signature"]}"}}'.encode(),
                {"SGX-Enclave-Identity-Issuer-Chain": quote(c["qe_identity_issuer_chain"])},
            ),
            "rootcacrl": (c["root_ca_crl"].encode(), {}),
        }


@contextmanager
def serve_fake_pccs(collateral_json: str) -> Iterator[tuple[FakePccs, str]]:
    """Yield the fake and its base URL (http://127.0.0.1:PORT/)."""
    pccs = FakePccs(collateral_json)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            pccs.requests.append(self.path)
            route = urllib.parse.urlparse(self.path).path.removeprefix("/sgx/certification/v4/")
            answer = None if pccs.fail else pccs.responses().get(route)
            if answer is None:
                self.send_response(503 if pccs.fail else 404)
                self.end_headers()
                return
            body, headers = answer
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield pccs, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
