"""The `[secure_aggregation]` job section (masked mode) and the check every owner runs before joining.

    [secure_aggregation]
    enabled = true
    degree = 8          # neighbours per owner in the SecAgg+ graph (even; O(log n))
    threshold = 5       # Shamir shares that rebuild a seed; 2 * threshold > degree + 1
    scale = 65536.0     # fixed-point steps per unit: per-coordinate error of the sum <= n / (2 * scale)
    modulus_bits = 64   # arithmetic modulo 2^32 or 2^64
    clip_norm = 1.0     # each owner clips its own delta to this L2 norm before masking
    noise = "central"   # with [dp]: "central" (the enclave noises the unmasked sum) or "skellam" (each owner
                        # adds its share of distributed Skellam noise before masking: privacy/distributed.py)

`check_secure_aggregation` raises UnsafeSecureAggregation with the reason when the parameters are unsafe:
a threshold a minority of an owner's share holders could reach (the relay could then collect both the
self-mask and the mask-key shares of one owner and unmask it alone), a threshold no neighbourhood can reach,
a modulus a sum of N clipped updates could wrap, or a rule masked mode cannot run: robust rules and per-update
server-side clipping need to see individual updates, which is exactly what masking hides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from enclavefl.errors import JobSpecError, UnsafeSecureAggregation

_KEYS = frozenset({"enabled", "degree", "threshold", "scale", "modulus_bits", "clip_norm", "noise"})
NoiseMechanism = Literal["central", "skellam"]
NOISE_MECHANISMS: tuple[NoiseMechanism, ...] = ("central", "skellam")


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureAggregationSpec:
    """Masked-mode parameters; part of the job digest."""

    enabled: bool = True
    degree: int = 8
    threshold: int = 5
    scale: float = float(1 << 16)
    modulus_bits: int = 64
    clip_norm: float = 1.0
    noise: Literal["central", "skellam"] = (
        "central"  # where a DP job's noise is added: the enclave, or the owners (distributed)
    )

    @property
    def distributed_noise(self) -> bool:
        return self.noise == "skellam"

    def to_canonical(self) -> dict[str, object]:
        canonical: dict[str, object] = {
            "enabled": self.enabled,
            "degree": self.degree,
            "threshold": self.threshold,
            "scale": self.scale,
            "modulus_bits": self.modulus_bits,
            "clip_norm": self.clip_norm,
        }
        if self.noise != "central":  # absent when central, so digests of jobs written before the field hold
            canonical["noise"] = self.noise
        return canonical

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> SecureAggregationSpec:
        unknown = set(raw) - _KEYS
        if unknown:
            raise JobSpecError(f"secure_aggregation: unknown key(s) {', '.join(sorted(unknown))}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise JobSpecError("secure_aggregation.enabled: must be true or false")
        return cls(
            enabled=enabled,
            degree=_int(raw, "degree", 8),
            threshold=_int(raw, "threshold", 5),
            scale=_float(raw, "scale", float(1 << 16)),
            modulus_bits=_int(raw, "modulus_bits", 64),
            clip_norm=_float(raw, "clip_norm", 1.0),
            noise=_noise(raw.get("noise", "central")),
        )

    def holders(self, owners: int) -> int:
        """Share holders of one owner: its neighbours (the graph is complete below degree + 1 owners) and itself."""
        return min(self.degree, owners - 1) + 1

    def tolerated_dropouts(self, owners: int) -> int:
        """How many of one owner's share holders may drop out and its seeds still be rebuilt."""
        return self.holders(owners) - self.threshold


def check_secure_aggregation(
    spec: SecureAggregationSpec,
    *,
    owners: int,
    strategy_name: str,
    strategy_params: Mapping[str, object],
    dp: Mapping[str, object] | None,
) -> None:
    """UnsafeSecureAggregation (with the reason) unless masked mode with `spec` is safe for this job."""
    if not spec.enabled:
        return
    if owners < 2:
        raise UnsafeSecureAggregation(
            "secure_aggregation: masked mode needs the enrolled data owners listed in the job (at least 2): the "
            "neighbour graph and the modulus check count them"
        )
    if spec.degree < 2 or spec.degree % 2:
        raise UnsafeSecureAggregation(f"secure_aggregation.degree: an even number >= 2, got {spec.degree}")
    nominal = spec.degree + 1
    if 2 * spec.threshold <= nominal:
        raise UnsafeSecureAggregation(
            f"secure_aggregation.threshold: {spec.threshold} is too low for degree {spec.degree}: it must exceed half "
            f"of the {nominal} share holders (the owner and its neighbours), or two disjoint groups of holders could "
            "give the relay both an owner's self-mask seed and its mask key, unmasking that owner alone"
        )
    if spec.threshold > spec.holders(owners):
        raise UnsafeSecureAggregation(
            f"secure_aggregation.threshold: {spec.threshold} exceeds the {spec.holders(owners)} share holders each "
            f"owner has among {owners} owners: no seed could ever be rebuilt"
        )
    if spec.modulus_bits not in (32, 64):
        raise UnsafeSecureAggregation(f"secure_aggregation.modulus_bits: 32 or 64, got {spec.modulus_bits}")
    if not (math.isfinite(spec.scale) and spec.scale > 0 and math.isfinite(spec.clip_norm) and spec.clip_norm > 0):
        raise UnsafeSecureAggregation("secure_aggregation.scale and clip_norm: must be positive numbers")
    worst = owners * (spec.clip_norm * spec.scale + 0.5)
    if worst >= 2.0 ** (spec.modulus_bits - 1):
        raise UnsafeSecureAggregation(
            f"secure_aggregation.modulus_bits: 2^{spec.modulus_bits} is too small: {owners} owners x clip_norm "
            f"{spec.clip_norm:g} x scale {spec.scale:g} can reach {worst:.3g}, beyond the signed range "
            f"2^{spec.modulus_bits - 1}; the sum would wrap. Lower scale or clip_norm, or use 64 bits"
        )
    if strategy_name != "fedavg":
        raise UnsafeSecureAggregation(
            f"strategy.name: {strategy_name} cannot run in masked mode: the enclave sees only the sum of the updates, "
            "so robust rules (median, Krum, trimmed mean, centered clipping) and server optimizers are given up; "
            "use fedavg"
        )
    if strategy_params.get("weighted", True) is not False:
        raise UnsafeSecureAggregation(
            "strategy.params.weighted: masked mode sums the updates unweighted (an example count would be the "
            "owner's own unverifiable claim, and its weight would escape the clip); set weighted = false"
        )
    if dp is not None:
        dp_clip = dp.get("clip_norm")
        if not isinstance(dp_clip, int | float) or spec.clip_norm > float(dp_clip):
            raise UnsafeSecureAggregation(
                f"secure_aggregation.clip_norm: {spec.clip_norm:g} exceeds dp.clip_norm {dp_clip!r}; in masked mode "
                "the enclave cannot clip each update (per-update server-side clipping is given up), so the owners "
                "clip and the noise is calibrated to their clip: it must be at most dp.clip_norm"
            )
    _check_distributed_noise(spec, owners=owners, dp=dp)


def _check_distributed_noise(spec: SecureAggregationSpec, *, owners: int, dp: Mapping[str, object] | None) -> None:
    """Skellam noise needs [dp] (its sigma), an RDP accountant, a Poisson rate PTRS samples, and no wrap-around."""
    if not spec.distributed_noise:
        return
    if dp is None:
        raise UnsafeSecureAggregation(
            "secure_aggregation.noise: 'skellam' is the owners' share of a DP job's noise; the job has no [dp] table"
        )
    if dp.get("accountant", "rdp") != "rdp":
        raise UnsafeSecureAggregation(
            "secure_aggregation.noise: 'skellam' is accounted through its RDP bound (Agarwal et al. 2021); set "
            "dp.accountant = 'rdp'"
        )
    sigma, dp_clip = dp.get("noise_multiplier"), dp.get("clip_norm")
    if not isinstance(sigma, int | float) or not isinstance(dp_clip, int | float):
        return  # DpParams.from_mapping reports the malformed table
    total = (float(sigma) * float(dp_clip) * spec.scale) ** 2  # the sum's variance; an owner's is total / K
    variance = total / owners  # K <= owners: no owner's share is smaller than this
    if variance / 2.0 < 10.0:
        raise UnsafeSecureAggregation(
            f"secure_aggregation.scale: {spec.scale:g} is too coarse for Skellam noise of sigma {sigma:g} x clip "
            f"{dp_clip:g}: each owner's Poisson rate {variance / 2:.3g} is below 10; raise scale"
        )
    # each owner's share (at most the total) stays within 40 standard deviations but with probability < 1e-300
    worst = owners * (spec.clip_norm * spec.scale + 0.5 + 40.0 * math.sqrt(total))
    if worst >= 2.0 ** (spec.modulus_bits - 1):
        raise UnsafeSecureAggregation(
            f"secure_aggregation.modulus_bits: 2^{spec.modulus_bits} is too small for {owners} owners' clipped "
            f"updates plus their Skellam noise (up to {worst:.3g}); lower scale or use 64 bits"
        )


def _noise(value: object) -> NoiseMechanism:
    for name in NOISE_MECHANISMS:
        if value == name:
            return name
    raise JobSpecError(f"secure_aggregation.noise: 'central' or 'skellam', got {value!r}")


def _int(raw: Mapping[str, object], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobSpecError(f"secure_aggregation.{key}: must be an integer, got {value!r}")
    return value


def _float(raw: Mapping[str, object], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobSpecError(f"secure_aggregation.{key}: must be a number, got {value!r}")
    return float(value)
