"""The node's malloc settings start no process (the enclave refuses subprocesses) and use the manifest's arena bound."""

from __future__ import annotations

import json
import subprocess
import sys

from enclavefl.enclave import malloc_tuning
from enclavefl.tee.process_env import MALLOC_ARENA_MAX

WATCHED = """
import json, sys
spawned = []
sys.addaudithook(lambda event, args: spawned.append(event) if event in (
    "subprocess.Popen", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.fork", "os.forkpty") else None)
from enclavefl.enclave.malloc_tuning import return_freed_memory_to_the_os
applied = return_freed_memory_to_the_os()
print(json.dumps({"applied": applied, "spawned": spawned}))
"""


def test_tuning_applies_on_glibc_without_starting_a_process() -> None:
    # ctypes.util.find_library("c") runs ldconfig (or gcc) in a subprocess: inside Gramine that is refused
    # (sys.disallow_subprocesses) and would be a new enclave anyway.
    done = subprocess.run([sys.executable, "-c", WATCHED], capture_output=True, text=True, check=True)

    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"applied": True, "spawned": []}


def test_the_arena_bound_is_the_one_the_manifest_sets() -> None:
    assert malloc_tuning.ARENA_MAX == MALLOC_ARENA_MAX
