#!/usr/bin/env bash
# Rebuild an operator's enclave release from its recorded inputs and compare MRENCLAVE: what a data owner runs
# before allowing a node.
#
#   packaging/enclave/rebuild.sh RELEASE_DIR [OUT_DIR]       (from the enclavefl source at the release's tag)
#
# Reads RELEASE_DIR/release.toml and RELEASE_DIR/job/job.toml, nothing else of it, builds OUT_DIR from them
# (default: RELEASE_DIR-rebuilt) with the host procedure (build-release.sh), or with docker when
# REBUILD_WITH=docker (then GRAMINE_CONTEXT names the directory holding the pinned gramine.deb or gramine.tar),
# and compares its MRENCLAVE with RELEASE_DIR/aggregator.sig (or with MRENCLAVE=<hex> if you were sent only that).
# Exit 0: equal, allow it. Exit 1: different: `diff RELEASE_DIR/aggregator.files OUT_DIR/aggregator.files`.
set -euo pipefail
RELEASE="${1:?usage: rebuild.sh RELEASE_DIR [OUT_DIR]}"
OUT="${2:-${RELEASE%/}-rebuilt}"
ENCLAVEFL="${ENCLAVEFL:-enclavefl}"
HERE="$(cd "$(dirname "$0")" && pwd)"
[ -f "$RELEASE/release.toml" ] && [ -f "$RELEASE/job/job.toml" ] \
    || { echo "error: $RELEASE needs release.toml and job/job.toml" >&2; exit 1; }
[ -e "$OUT" ] && { echo "error: $OUT exists; give another OUT_DIR" >&2; exit 1; }
mkdir -p "$OUT/job"
cp "$RELEASE/release.toml" "$OUT/"
cp "$RELEASE/job/job.toml" "$OUT/job/"

if [ "${REBUILD_WITH:-host}" = docker ]; then
    BASE="$(sh "$HERE/pins.sh" "$OUT/release.toml" base)"
    : "${GRAMINE_CONTEXT:?set GRAMINE_CONTEXT to the directory holding the pinned gramine.deb or gramine.tar}"
    docker build -f "$HERE/Containerfile" --build-arg BASE="$BASE" --build-context release="$OUT" \
        --build-context gramine="$GRAMINE_CONTEXT" --target release -o "$OUT" "$HERE/../.."
else
    "$HERE/build-release.sh" "$OUT"
fi

expected="${MRENCLAVE:-$("$ENCLAVEFL" enclave measure "$RELEASE/aggregator.sig" --json | sed -n 's/.*"mrenclave": "\([0-9a-f]*\)".*/\1/p')}"
rebuilt="$("$ENCLAVEFL" enclave measure "$OUT/aggregator.sig" --json | sed -n 's/.*"mrenclave": "\([0-9a-f]*\)".*/\1/p')"
echo "operator's mrenclave  $expected"
echo "rebuilt mrenclave     $rebuilt"
if [ "$expected" = "$rebuilt" ]; then
    echo "equal: this release is what its inputs build"
else
    echo "DIFFERENT: do not allow it; compare: diff $RELEASE/aggregator.files $OUT/aggregator.files" >&2
    exit 1
fi
