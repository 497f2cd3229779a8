"""INSECURE: a release's manifest template changed just enough for `gramine-direct` to run the node without SGX.

    text = insecure_direct_template(release_template, argv=[...], platform_dir=Path("platform"), key_hex=...)
    # then, in the release directory: gramine-manifest aggregator-direct.manifest.template aggregator-direct.manifest
    #                                 gramine-direct aggregator-direct

gramine-direct runs Gramine's LibOS on the host kernel: the same manifest, mounts, interpreter, stdlib, native
libraries, encrypted files, sockets and threads as under gramine-sgx, but with no enclave, no measurement and no
/dev/attestation. Three things therefore change, and nothing else:

- the state mount's key: `_sgx_mrenclave` exists only inside SGX, so the state is encrypted under a test key given
  in the manifest (`fs.insecure__keys`, which check-manifest refuses in a release);
- the command line: the node runs with the INSECURE simulated TEE (`node serve --tee insecure-simulation`),
  whose simulated platform directory is mounted at /enclavefl/platform as an allowed (unchecked) directory;
- flock is enabled (Gramine's experimental in-LibOS locks), for the node's state-directory lock;
- the whole venv's site-packages is trusted: Gramine 1.9 checks trusted files under gramine-direct too, and the
  simulated TEE is reached through the CLI (`node serve`), whose code and libraries (typer, rich) the release's
  own manifest does not trust.

What it shows is the LibOS path (Python's start-up, the mounts, encrypted files, gRPC on Gramine's sockets and
epoll, the threads), never an attestation: its evidence is the simulation's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from enclavefl.errors import ConfigError
from enclavefl.tee.insecure._warnings import warn_insecure

DIRECT_KEY_NAME: Final = "insecure_direct_test"
PLATFORM_MOUNT: Final = "/enclavefl/platform"
_KEY_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_STATE_KEY: Final = 'key_name = "_sgx_mrenclave"'
_ARGV_RE: Final = re.compile(r"^loader\.argv = .*$", re.MULTILINE)
_TMPFS: Final = '  { type = "tmpfs", path = "/tmp" },\n'
_TRUSTED: Final = "sgx.trusted_files = [\n"
_ALLOWED: Final = "sgx.allowed_files = [\n"
SITE_PACKAGES: Final = "venv/lib/python3.11/site-packages/"


def insecure_direct_template(template: str, *, argv: Sequence[str], platform_dir: Path, key_hex: str) -> str:
    """The release's manifest template for gramine-direct: test key for the state, simulated TEE, flock on."""
    if not _KEY_RE.match(key_hex):
        raise ConfigError("key_hex: a 128-bit test key as 32 lowercase hex digits")
    counts = (
        template.count(_STATE_KEY),
        len(_ARGV_RE.findall(template)),
        template.count(_TMPFS),
        template.count(_TRUSTED),
        template.count(_ALLOWED),
    )
    if counts != (1, 1, 1, 1, 1):
        raise ConfigError(
            "not a release manifest template: expected one state mount, loader.argv, tmpfs, trusted and allowed list"
        )
    platform = str(platform_dir.absolute())
    if any(c in platform for c in '"\\\n'):
        raise ConfigError(f"platform directory {platform!r} has a quote, backslash or newline")
    warn_insecure("a gramine-direct manifest: no SGX, a test key in the manifest, simulated attestation")
    text = template.replace(_STATE_KEY, f'key_name = "{DIRECT_KEY_NAME}"')
    text = _ARGV_RE.sub(lambda _: f"loader.argv = {json.dumps(list(argv))}", text)
    text = text.replace(_TMPFS, f'{_TMPFS}  {{ path = "{PLATFORM_MOUNT}", uri = "file:{platform}" }},\n')
    text = text.replace(_TRUSTED, f'{_TRUSTED}  "file:{SITE_PACKAGES}",\n')
    text = text.replace(_ALLOWED, f'{_ALLOWED}  "file:{platform}/",\n')
    return (
        "# INSECURE: derived from the release's manifest for gramine-direct (tee/insecure/direct_manifest.py).\n"
        + text
        + f'\nfs.insecure__keys.{DIRECT_KEY_NAME} = "{key_hex}"\nsys.experimental__enable_flock = true\n'
    )
