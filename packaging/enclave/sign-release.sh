#!/usr/bin/env bash
# Add Gramine's files to an assembled release, render, check, measure and sign it, and write the owners' policy.
#
#   packaging/enclave/sign-release.sh RELEASE_DIR [-- ENCLAVE MEASURE OPTIONS, e.g. --accept-advisory INTEL-SA-00615]
#
# Runs wherever the Gramine that release.toml pins is installed (the host, or the Containerfile's image):
# gramine-manifest, gramine-sgx-sign and the enclavefl command (ENCLAVEFL, default `enclavefl` on PATH) must be
# found. Every file the manifest names is inside RELEASE_DIR (relative URIs), so the tools read nothing the enclave
# trusts from this machine's /usr. SIGNING_KEY: the operator's RSA-3072 key; without it a throwaway key signs
# (MRENCLAVE does not depend on the key, MRSIGNER does).
set -euo pipefail
RELEASE="${1:?usage: sign-release.sh RELEASE_DIR [-- MEASURE OPTIONS]}"
shift
[ "${1:-}" = "--" ] && shift
ENCLAVEFL="${ENCLAVEFL:-enclavefl}"
export PYTHONDONTWRITEBYTECODE=1  # nothing may write into a directory the enclave trusts
for tool in gramine-manifest gramine-sgx-sign gramine-sgx-gen-private-key; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found: install the Gramine release.toml names" >&2; exit 1; }
done
cd "$RELEASE"
[ -f aggregator.manifest.template ] || { echo "error: $RELEASE is not assembled (enclavefl enclave assemble)" >&2; exit 1; }

# Where this Gramine keeps its LibOS, glibc runtime and SGX PAL, as its own template helpers say.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'loader.env.LIBOS = "{{ gramine.libos }}"\nloader.env.RUNTIME = "{{ gramine.runtimedir() }}"\n' > "$probe/probe.template"
gramine-manifest --no-check "$probe/probe.template" "$probe/probe.manifest"
LIBOS="$(sed -n 's/^LIBOS = "\(.*\)"$/\1/p' "$probe/probe.manifest")"
RUNTIME="$(sed -n 's/^RUNTIME = "\(.*\)"$/\1/p' "$probe/probe.manifest")"
LIBPAL="$(dirname "$LIBOS")/sgx/libpal.so"

chmod -R u+w . 2>/dev/null || true
"$ENCLAVEFL" enclave add-gramine . --libos "$LIBOS" --runtime "$RUNTIME" --libpal-sgx "$LIBPAL"
gramine-manifest aggregator.manifest.template aggregator.manifest
"$ENCLAVEFL" enclave check-manifest aggregator.manifest
"$ENCLAVEFL" enclave file-set aggregator.manifest > aggregator.files

KEY="${SIGNING_KEY:-}"
if [ -z "$KEY" ]; then
    KEY="$probe/throwaway-key.pem"
    gramine-sgx-gen-private-key "$KEY" >/dev/null
    echo "note: signed with a throwaway key (set SIGNING_KEY to sign with yours; MRENCLAVE is the same)"
fi
# --date 0000-00-00 keeps aggregator.sig byte-identical across rebuilds of the same inputs and key.
gramine-sgx-sign --manifest aggregator.manifest --output aggregator.manifest.sgx --sigfile aggregator.sig \
    --key "$KEY" --libpal "$LIBPAL" --date 0000-00-00 >/dev/null
"$ENCLAVEFL" enclave measure aggregator.sig --policy-out policy.toml "$@"
# The trusted directories are read-only from here on: a stray .pyc or edit would make the enclave refuse to start.
chmod -R a-w runtime venv gramine job
