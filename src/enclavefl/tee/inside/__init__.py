"""What the enclave itself runs: evidence from Gramine's /dev/attestation and sealing under MRENCLAVE."""
