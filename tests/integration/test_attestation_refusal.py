"""A data-owner process whose policy pins another MRENCLAVE refuses the node, says what differed, sends nothing."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from federation_setup import TASK, tiny_federation

from enclavefl.core.exit_codes import ExitCode
from enclavefl.demos.process_federation import ProcessGroup, data_owner_command, node_command, wait_for_address
from enclavefl.host.node_tee import root_ca_file_name, simulation_policy
from enclavefl.tee.insecure.measurement import measure_aggregator_code
from enclavefl.tee.verify.policy import AttestationPolicy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(120)]
OTHER_MRENCLAVE = "ab" * 32


def test_data_owner_cli_exits_with_the_mrenclave_mismatch_when_the_policy_pins_other_code(tmp_path: Path) -> None:
    # prepare: a policy accepting the same simulated platform but another enclave measurement
    files = tiny_federation(
        tmp_path / "fed", owners=1, rounds=1, min_contributions=1, deadline=30.0, platform_dir=tmp_path / "platform"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = simulation_policy(files.platform_dir).simulation_root_ca_der
        assert root is not None
        wrong = AttestationPolicy.strict().allow_mrenclave(OTHER_MRENCLAVE).allow_simulation(root)
    files.policy.write_text(wrong.to_toml(simulation_root_ca=root_ca_file_name(root)))

    with ProcessGroup() as group:
        node = group.start("node", node_command(files, port_file=tmp_path / "node.addr"))
        address = wait_for_address(tmp_path / "node.addr", node)

        # act: the real CLI, as a data owner would type it
        owner = group.start("owner-00", data_owner_command(files, "owner-00", address, task=TASK))
        code = owner.wait(90.0)

        # assert
        output = "\n".join(owner.lines)
        assert code == ExitCode.ATTESTATION_REFUSED
        assert "attestation refused, nothing was sent: MrEnclaveMismatch:" in output
        assert f"MRENCLAVE {measure_aggregator_code().hex()} is not in the policy's allow-list" in output
        assert f"the policy allows MRENCLAVE {OTHER_MRENCLAVE}" in output
        assert node.popen.poll() is None  # the node is unharmed and still waiting
