#!/usr/bin/env sh
# Regenerate the committed protobuf/gRPC modules from src/enclavefl/transport/proto/enclavefl.proto.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src --grpc_python_out=src \
  src/enclavefl/transport/proto/enclavefl.proto
echo "generated src/enclavefl/transport/proto/enclavefl_pb2{,_grpc}.py"
