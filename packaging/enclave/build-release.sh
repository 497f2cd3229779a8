#!/usr/bin/env bash
# Build an enclave release on the host from its recorded inputs alone, in a pinned Debian root (mmdebstrap).
#
#   packaging/enclave/build-release.sh RELEASE_DIR [-- MEASURE OPTIONS]      (from the release's source tree)
#
# RELEASE_DIR holds release.toml and job/job.toml (`enclavefl enclave init`). Steps:
#   1. mmdebstrap makes a throwaway Debian root with exactly the packages release.toml pins (name=version; apt
#      checks each .deb against Debian's signed index, and `enclave assemble` checks the versions and sha256s again);
#   2. inside it, packaging/enclave/in-root.sh builds the venvs and assembles the release (the Containerfile runs
#      the same script), and the release is copied back out;
#   3. packaging/enclave/sign-release.sh adds the pinned Gramine's files, renders, checks, signs and measures.
# Nothing the enclave trusts is read from this machine's /usr: it all comes from the root, whose packages are
# pinned, or from the Gramine installation, whose files are pinned by sha256. Needs root (or mmdebstrap's unshare
# mode: MMDEBSTRAP_MODE=unshare), mmdebstrap, network access to the Debian archive and PyPI, and Gramine.
set -euo pipefail
RELEASE="${1:?usage: build-release.sh RELEASE_DIR [-- MEASURE OPTIONS]}"
shift
SOURCE="$(cd "$(dirname "$0")/../.." && pwd)"
[ -f "$RELEASE/release.toml" ] && [ -f "$RELEASE/job/job.toml" ] \
    || { echo "error: $RELEASE needs release.toml and job/job.toml (enclavefl enclave init)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap not found (apt-get install mmdebstrap)" >&2; exit 1; }
RELEASE="$(cd "$RELEASE" && pwd)"

PINS="$(dirname "$0")/pins.sh"
SUITE="$(sh "$PINS" "$RELEASE/release.toml" suite)"
INCLUDE="$(sh "$PINS" "$RELEASE/release.toml" include)"
mapfile -t SOURCES < <(sh "$PINS" "$RELEASE/release.toml" sources)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The source tree as git tracks it (what a release tag holds), or as it is when this is not a git checkout.
if git -C "$SOURCE" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SOURCE" ls-files -z --cached --others --exclude-standard | tar -C "$SOURCE" --null -T - -cf "$work/source.tar"
else
    tar -C "$SOURCE" --exclude=.venv --exclude=.git -cf "$work/source.tar" .
fi
mkdir -p "$work/out"
# Transport trust for pip inside the root (the wheels are pinned by sha256 anyway).
CA_BUNDLE="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
nice mmdebstrap --mode="${MMDEBSTRAP_MODE:-auto}" --variant=apt --format=null \
    --skip=cleanup/apt/lists --include="$INCLUDE" \
    --customize-hook='mkdir -p "$1/build/source" "$1/release"' \
    --customize-hook="tar-in $work/source.tar /build/source" \
    --customize-hook="copy-in $RELEASE/release.toml /release" \
    --customize-hook="copy-in $RELEASE/job /release" \
    --customize-hook="upload $CA_BUNDLE /build/ca-certificates.crt" \
    --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        sh /build/source/packaging/enclave/in-root.sh /build/source /release' \
    --customize-hook="sync-out /release $work/out" \
    "$SUITE" /dev/null "${SOURCES[@]}"
chmod -R u+w "$RELEASE"  # a previous build left its trusted directories read-only
cp -a "$work/out/." "$RELEASE/"
"$SOURCE/packaging/enclave/sign-release.sh" "$RELEASE" "$@"
