"""Central differential privacy applied inside the secure worker: clipping, CSPRNG Gaussian noise, the ledger.

Computing epsilon with dp-accounting (privacy/epsilon.py) is for the parties outside the enclave; import it
from its module. Nothing here imports it, so the enclave does not carry it.
"""

from enclavefl.privacy.accountant import PrivacyAccountant, PrivacySpent, scheduled_epsilon
from enclavefl.privacy.central_dp import CentralDP, CentralDPRound
from enclavefl.privacy.noise import ChaCha20Gaussian, NoiseSource
from enclavefl.privacy.params import DpParams

__all__ = [
    "CentralDP",
    "CentralDPRound",
    "ChaCha20Gaussian",
    "DpParams",
    "NoiseSource",
    "PrivacyAccountant",
    "PrivacySpent",
    "scheduled_epsilon",
]
