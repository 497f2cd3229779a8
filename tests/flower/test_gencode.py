"""The checked-in protobuf gencode loads beside Flower: flwr 1.42 pins protobuf < 7 (6.33), and a gencode made by
protobuf 7 refuses to load under a 6.x runtime (VersionError at import: no node, no data owner, no demo). A 6.x
gencode loads under 6.x and 7.x runtimes. Regenerate with grpcio-tools 1.75.1 (bundles protobuf 6.31.1):

    pip install grpcio-tools==1.75.1
    cd src && python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \\
        enclavefl/transport/proto/enclavefl.proto
"""

from __future__ import annotations

import re
from pathlib import Path

import google.protobuf

PB2 = Path(__file__).parents[2] / "src" / "enclavefl" / "transport" / "proto" / "enclavefl_pb2.py"


def test_the_gencode_is_from_protobuf_6_so_flowers_pinned_runtime_loads_it() -> None:
    found = re.search(r"^# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)$", PB2.read_text(), flags=re.M)
    assert found is not None
    major = int(found.group(1))
    assert major == 6, f"gencode {found.group(0)}: regenerate with grpcio-tools 1.75.1 (this module's docstring)"
    assert int(google.protobuf.__version__.split(".")[0]) >= major  # and this runtime loads it


def test_the_transport_imports_under_this_runtime() -> None:
    from enclavefl.transport import wire

    assert wire.pb.DESCRIPTOR.name == "enclavefl/transport/proto/enclavefl.proto"
