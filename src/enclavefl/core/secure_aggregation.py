"""The `[secure_aggregation]` job section (masked mode) and the check every owner runs before joining.

    [secure_aggregation]
    enabled = true
    degree = 8          # neighbours per owner in the SecAgg+ graph (even; O(log n))
    threshold = 5       # Shamir shares that rebuild a seed; 2 * threshold > degree + 1
    scale = 65536.0     # fixed-point steps per unit: per-coordinate error of the sum <= n / (2 * scale)
    modulus_bits = 64   # arithmetic modulo 2^32 or 2^64
    clip_norm = 1.0     # each owner clips its own delta to this L2 norm before masking
    noise = "skellam"   # with [dp], required: "skellam" (each owner adds its share of distributed Skellam noise
                        # before masking: privacy/distributed.py) or "insecure_central" (the enclave noises the
                        # sum after unmasking, so enclave memory holds a noise-free sum). Without [dp]: ignored.

`check_secure_aggregation` raises UnsafeSecureAggregation with the reason when the parameters are unsafe:
a threshold a minority of an owner's share holders could reach (the relay could then collect both the
self-mask and the mask-key shares of one owner and unmask it alone), a threshold no neighbourhood can reach,
a modulus a sum of N clipped updates could wrap, or a rule masked mode cannot run: robust rules and per-update
server-side clipping need to see individual updates, which is exactly what masking hides.

Noise of a masked DP job (issue 22): distributed Skellam noise is the default, so every sum the enclave unmasks is
already private against a reader of enclave memory. Where Skellam cannot apply (a PLD accountant, an owner's Poisson
rate below 10, a modulus the noise could wrap) the job is refused with the parameter to change; it never falls back
to central noise. Central noise after unmasking stays available only as `noise = "insecure_central"`. Before this
rule a masked DP job without `noise` meant central noise, and its digest left the field out: such a file is now
refused (it would otherwise change meaning), and both mechanisms enter the digest by name, so neither shares a digest
with the other nor with a file of the old meaning. Without [dp] the field has no effect and stays out of the digest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from enclavefl.errors import JobSpecError, UnsafeSecureAggregation

_KEYS = frozenset({"enabled", "degree", "threshold", "scale", "modulus_bits", "clip_norm", "noise"})
NoiseMechanism = Literal["skellam", "insecure_central"]
NOISE_MECHANISMS: tuple[NoiseMechanism, ...] = ("skellam", "insecure_central")
INSECURE_CENTRAL_WARNING = (
    "WARNING: INSECURE: secure_aggregation.noise = 'insecure_central': the enclave adds the DP noise after it "
    "unmasks the sum, so a reader of enclave memory sees every round's noise-free sum; the default 'skellam' has "
    "the owners noise their updates before masking"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureAggregationSpec:
    """Masked-mode parameters; part of the job digest."""

    enabled: bool = True
    degree: int = 8
    threshold: int = 5
    scale: float = float(1 << 16)
    modulus_bits: int = 64
    clip_norm: float = 1.0
    # Where a DP job's noise is added: by the owners before masking (distributed, the default) or by the enclave
    # after unmasking (insecure_central). None: not stated (a job file without the field); JobSpec refuses that in a
    # masked DP job and sets it for every other job (the field then has no effect).
    noise: Literal["skellam", "insecure_central"] | None = "skellam"

    @property
    def distributed_noise(self) -> bool:
        return self.noise == "skellam"

    @property
    def insecure_central_noise(self) -> bool:
        return self.noise == "insecure_central"

    def to_canonical(self) -> dict[str, object]:
        canonical: dict[str, object] = {
            "enabled": self.enabled,
            "degree": self.degree,
            "threshold": self.threshold,
            "scale": self.scale,
            "modulus_bits": self.modulus_bits,
            "clip_norm": self.clip_norm,
        }
        if self.noise is not None:  # by name: a masked DP job's digest says which mechanism (see the module doc)
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
            noise=_noise(raw["noise"]) if "noise" in raw else None,
        )

    @classmethod
    def for_owners(cls, owners: int, *, clip_norm: float = 1.0) -> SecureAggregationSpec:
        """Safe parameters for `owners` enrolled owners: the largest even degree up to 8 their graph allows, and
        the smallest threshold above half of each owner's share holders (what `job init --masked` writes)."""
        degree = max(2, min(8, (owners - 1) // 2 * 2))
        return cls(degree=degree, threshold=degree // 2 + 1, clip_norm=clip_norm)

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
    """A masked DP job states its noise; Skellam noise needs an RDP accountant, a Poisson rate PTRS samples, and no
    wrap-around. Each refusal names the parameter to change: nothing falls back to central noise."""
    if dp is None:
        return  # JobSpec sets noise to None: without [dp] there is no noise to place
    if spec.noise is None:
        raise JobSpecError(MISSING_NOISE)
    if not spec.distributed_noise:
        return
    if dp.get("accountant", "rdp") != "rdp":
        raise UnsafeSecureAggregation(
            "dp.accountant: masked DP jobs add distributed Skellam noise, accounted through its RDP bound (Agarwal "
            "et al. 2021); set dp.accountant = 'rdp' (--dp-accountant rdp)"
        )
    sigma, dp_clip = dp.get("noise_multiplier"), dp.get("clip_norm")
    if not isinstance(sigma, int | float) or not isinstance(dp_clip, int | float):
        return  # DpParams.from_mapping reports the malformed table
    total = (float(sigma) * float(dp_clip) * spec.scale) ** 2  # the sum's variance; an owner's is total / K
    variance = total / owners  # K <= owners: no owner's share is smaller than this
    if variance / 2.0 < 10.0:
        raise UnsafeSecureAggregation(
            f"secure_aggregation.scale: {spec.scale:g} is too coarse for Skellam noise of sigma {sigma:g} x clip "
            f"{dp_clip:g} shared by {owners} owners: each owner's Poisson rate {variance / 2:.3g} is below 10; raise "
            "secure_aggregation.scale (or dp.noise_multiplier)"
        )
    # each owner's share (at most the total) stays within 40 standard deviations but with probability < 1e-300
    worst = owners * (spec.clip_norm * spec.scale + 0.5 + 40.0 * math.sqrt(total))
    if worst >= 2.0 ** (spec.modulus_bits - 1):
        raise UnsafeSecureAggregation(
            f"secure_aggregation.modulus_bits: 2^{spec.modulus_bits} is too small for {owners} owners' clipped "
            f"updates plus their Skellam noise (up to {worst:.3g}); lower secure_aggregation.scale or set "
            "secure_aggregation.modulus_bits = 64"
        )


MISSING_NOISE = (
    "secure_aggregation.noise: missing in a masked job with [dp] (it used to mean central noise after unmasking); "
    'write noise = "skellam" (owners noise before masking; rerun `enclavefl job init` for its epsilon schedule) '
    'or noise = "insecure_central"'
)


def _noise(value: object) -> NoiseMechanism:
    for name in NOISE_MECHANISMS:
        if value == name:
            return name
    if value == "central":
        raise JobSpecError(
            "secure_aggregation.noise: 'central' is now named 'insecure_central' (the enclave's memory holds the "
            'noise-free sum); write noise = "insecure_central", or "skellam" to have the owners add the noise'
        )
    raise JobSpecError(f"secure_aggregation.noise: 'skellam' or 'insecure_central', got {value!r}")


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
