#!/bin/sh
# The release's build steps inside the pinned root filesystem: shared by build-release.sh (a root made by
# mmdebstrap on the host) and the Containerfile (the image), so both lay out the same release.
#
#   sh packaging/enclave/in-root.sh SOURCE_DIR RELEASE_DIR
#
# SOURCE_DIR is the enclavefl source tree of the release; RELEASE_DIR holds release.toml and job/job.toml
# (`enclavefl enclave init`). Everything runs with the root's own python3.11: the build venv (pip from Debian's
# pinned python3-pip-whl), the hash-pinned wheels, enclavefl's wheel built from SOURCE_DIR, the enclave venv at
# /opt/enclavefl/venv, then `enclavefl enclave assemble`, which checks the root's packages against release.toml
# and copies the runtime into RELEASE_DIR. Needs network access to PyPI (pip download, by hash).
set -eu
SOURCE="${1:?usage: in-root.sh SOURCE_DIR RELEASE_DIR}"
RELEASE="${2:?usage: in-root.sh SOURCE_DIR RELEASE_DIR}"
BUILD=/build/work
VENV=/opt/enclavefl/venv
# No .pyc anywhere (they carry timestamps and would be measured), fixed timestamps in the wheel, no locale drift.
export PYTHONDONTWRITEBYTECODE=1 PIP_NO_COMPILE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export SOURCE_DATE_EPOCH=315532800 LC_ALL=C.UTF-8
# The CA bundle the caller trusts for downloads (build-release.sh copies the host's in): the wheels are checked
# by sha256 whatever the transport, so this only lets pip reach PyPI through the caller's network.
if [ -f /build/ca-certificates.crt ]; then export PIP_CERT=/build/ca-certificates.crt; fi

rm -rf "$BUILD" "$VENV"
mkdir -p "$BUILD/wheels"
# The two requirement lists of release.toml, as pip files (one "name==version --hash=sha256:..." a line).
python3.11 -I -c '
import sys, tomllib
doc = tomllib.load(open(sys.argv[1], "rb"))
for key, out in (("requirements", sys.argv[2]), ("build_requirements", sys.argv[3])):
    open(out, "w").write("".join(line + "\n" for line in doc["python"][key]))
' "$RELEASE/release.toml" "$BUILD/requirements-enclave.txt" "$BUILD/requirements-build.txt"

python3.11 -I -m venv "$BUILD/venv"
"$BUILD/venv/bin/pip" install --quiet --require-hashes --no-deps --only-binary=:all: -r "$BUILD/requirements-build.txt"
# enclavefl's own wheel with the pinned setuptools and wheel (a fresh venv has Debian's setuptools 66 and no wheel)
"$BUILD/venv/bin/pip" wheel --quiet --no-deps --no-build-isolation -w "$BUILD/wheels" "$SOURCE"

# The enclave venv: the interpreter copied (the manifest trusts venv/bin/python3 itself), no pip inside.
python3.11 -I -m venv --copies --without-pip "$VENV"
"$BUILD/venv/bin/pip" --python "$VENV/bin/python3" install --quiet --no-compile --require-hashes --no-deps \
    --only-binary=:all: \
    -r "$BUILD/requirements-enclave.txt"
# by name from a wheelhouse: a wheel *path* would be recorded in direct_url.json
"$BUILD/venv/bin/pip" --python "$VENV/bin/python3" install --quiet --no-compile --no-deps --no-index \
    --find-links "$BUILD/wheels" enclavefl

"$VENV/bin/python3" -I -B -m enclavefl.cli.main enclave assemble "$RELEASE"
