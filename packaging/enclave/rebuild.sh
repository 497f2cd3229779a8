#!/usr/bin/env bash
# Rebuild a release's enclave and print its MRENCLAVE: what a data owner runs before allowing a node.
#
#   packaging/enclave/rebuild.sh JOB_DIR [OUT_DIR]      (from the release's source checkout; needs docker)
#
# Compare the printed mrenclave with the operator's policy.toml (or `enclavefl enclave measure` of the
# operator's aggregator.sig). If they differ, diff OUT_DIR/aggregator.files with the operator's.
set -euo pipefail
JOB_DIR="${1:?usage: rebuild.sh JOB_DIR [OUT_DIR]}"
OUT_DIR="${2:-enclave-rebuild}"
[ -f "$JOB_DIR/job.toml" ] || { echo "error: $JOB_DIR/job.toml not found" >&2; exit 1; }
: "${BASE:?set BASE to the pinned base image of the release, e.g. debian:bookworm-slim@sha256:...}"
cd "$(dirname "$0")/../.."
docker build -f packaging/enclave/Containerfile --build-arg BASE="$BASE" \
    --build-context job="$JOB_DIR" -o "$OUT_DIR" .
enclavefl enclave measure "$OUT_DIR/aggregator.sig"
