"""Collateral fetched from a PCCS or Intel PCS over the network: for the host agent and for verifiers.

    source = PccsCollateralSource("https://pccs.example:8081/sgx/certification/v4/")
    collateral_json = source.collateral_for(quote)

Never inside the enclave (it makes no outbound call): the enclave reads what the host agent wrote
(tee/collateral.py's FileCollateralSource).
"""

from __future__ import annotations

import asyncio

import dcap_qvl

from enclavefl.errors import TeeUnavailable


class PccsCollateralSource:
    """Fetches collateral from a PCCS (or Intel PCS) with dcap-qvl's `get_collateral`. Network.

    There is deliberately no default URL: dcap-qvl's own default is a third party's PCCS.
    """

    def __init__(self, pccs_url: str) -> None:
        url = pccs_url.strip()
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"pccs_url must be an http(s) URL, got {pccs_url!r}")
        self.pccs_url = url

    async def fetch(self, quote: bytes) -> str:
        """The async form, for callers already inside an event loop."""
        try:
            collateral = await dcap_qvl.get_collateral(self.pccs_url, quote)
        except (ValueError, RuntimeError) as exc:
            raise TeeUnavailable(f"could not fetch collateral from {self.pccs_url}: {exc}") from exc
        text: str = collateral.to_json()
        return text

    def collateral_for(self, quote: bytes) -> str:
        return asyncio.run(self.fetch(quote))
