"""Trusted execution: laid out by who runs each part.

tee/evidence.py, binding.py, backend.py, collateral.py   the shared vocabulary: evidence, what the report
                                                          data binds, the backend interface, collateral files
tee/inside/        what the enclave runs: Gramine's /dev/attestation, sealing (in the enclave's TCB)
tee/verify/        what data owners, model owners and auditors run to check a node: quote parsing, dcap-qvl
                   verification, attestation policies, collateral from a PCCS (never inside the enclave)
tee/gramine_pkg/   build tooling: the Gramine manifest, trusted files, SIGSTRUCT, the TCB report
tee/insecure/      the INSECURE simulated enclave, reachable only through names that say so
"""
