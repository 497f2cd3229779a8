"""The `enclavefl` command line (entry point: enclavefl.cli.main)."""

import os

# gRPC's C core prints raw lines ("E1130 ... add_port.cc:83] Failed to add port") on stderr next to the
# one-line errors the commands print themselves. It reads this variable once, when grpc is first imported,
# which is why it is set here, before any command module loads. GRPC_VERBOSITY=ERROR brings the lines back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
