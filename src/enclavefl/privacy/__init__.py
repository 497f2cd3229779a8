"""Central differential privacy applied inside the secure worker: clipping, CSPRNG Gaussian noise, accounting."""

from enclavefl.privacy.accountant import (
    PrivacyAccountant,
    PrivacySpent,
    calibrate_noise_multiplier,
    epsilon_after,
)
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
    "calibrate_noise_multiplier",
    "epsilon_after",
]
