#!/bin/sh
# Read the Debian inputs of a release.toml without Python (a base image has none):
#
#   sh packaging/enclave/pins.sh RELEASE_TOML suite|sources|include|base
#
# suite: the Debian suite; base: the Containerfile's base image (by digest); sources: one apt line per source
# ("deb URI SUITE COMPONENT"); include: the pinned packages as apt's "name=version", comma-separated. release.toml is written by `enclavefl enclave init` in one
# canonical layout, whose names and versions are checked to hold no quotes or spaces (release_inputs.py).
set -eu
FILE="${1:?usage: pins.sh RELEASE_TOML suite|sources|include|base}"
case "${2:?usage: pins.sh RELEASE_TOML suite|sources|include|base}" in
base) awk -F'"' '/^\[/ { table = $0 } table == "[debian]" && /^base_image = / { print $2 }' "$FILE" ;;
suite) awk -F'"' '/^\[/ { table = $0 } table == "[debian]" && /^suite = / { print $2 }' "$FILE" ;;
sources) awk -F'"' '/^\[/ { table = $0 } table == "[debian]" && /^sources = \[/ { on = 1; next }
                    on && /^\]/ { on = 0 } on { print "deb " $2 }' "$FILE" ;;
include) awk -F'"' '/^\[/ { table = $0 } table == "[debian]" && /^  \{ name = / { printf "%s%s=%s", sep, $2, $4; sep = "," }
                    END { print "" }' "$FILE" ;;
*) echo "usage: pins.sh RELEASE_TOML suite|sources|include|base" >&2; exit 2 ;;
esac
