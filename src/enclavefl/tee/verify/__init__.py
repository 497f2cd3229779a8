"""What data owners, model owners and auditors run to check a node; never loaded inside the enclave."""
