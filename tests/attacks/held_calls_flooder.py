"""The flooding party of tests/attacks/test_held_calls_flood.py, in a process of its own (as on another machine).

    python held_calls_flooder.py ADDRESS JOB_FILE POLICY_FILE KEY CERT THREADS

It attests the node as the model owner (its key and certificate: an enrolled party, over real TLS), prints
"attested", then keeps THREADS Status long polls (up to 5 s each) in flight over that one connection, again and
again, until its standard input closes. It then prints one JSON line: how many NodeBusy answers its client waited
out and the type names of the errors its polls raised.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from enclavefl.core.jobfile import load_job
from enclavefl.owner.model_owner import ModelOwnerSession
from enclavefl.tee.verify.policy_file import load_policy
from enclavefl.transport.owner_tls import OwnerCredentials


def main(address: str, job_file: str, policy_file: str, key: str, cert: str, threads: str) -> None:
    session = ModelOwnerSession.connect(
        address, job=load_job(job_file), policy=load_policy(policy_file), credentials=OwnerCredentials.load(key, cert)
    )
    client = session.node.client
    stop = threading.Event()
    errors: list[str] = []

    def poll() -> None:
        seen = client.node_status()
        while not stop.is_set():
            try:  # the latest status as `seen`: each poll is held until the node changes (up to 5 s)
                seen = client.node_status(seen=seen, wait_seconds=5.0)
            except Exception as exc:
                errors.append(type(exc).__name__)
                time.sleep(0.1)

    for _ in range(int(threads)):
        threading.Thread(target=poll, daemon=True).start()
    print("attested", flush=True)
    sys.stdin.read()  # the test closes it when the honest owners are done
    stop.set()
    print(json.dumps({"busy_refusals": client.busy_refusals, "errors": errors}), flush=True)
    os._exit(0)  # the polls still in flight end with the process (their threads are the node's problem, not ours)


if __name__ == "__main__":
    main(*sys.argv[1:])
