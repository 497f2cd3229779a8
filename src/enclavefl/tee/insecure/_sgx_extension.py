"""DER encoding of Intel's SGX extension (OID 1.2.840.113741.1.13.1) for simulated PCK certificates.

Intel encodes the extension as SEQUENCE OF SEQUENCE { OID, value }, where the TCB entry's value is
itself such a sequence (16 component SVNs, PCESVN, CPUSVN). dcap-qvl walks it by OID, so the layout
below mirrors a real PCK certificate byte for byte (same tags, same order, minimal INTEGERs).
"""

from __future__ import annotations

from dataclasses import dataclass

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06
_ENUMERATED = 0x0A


@dataclass(frozen=True, slots=True, kw_only=True)
class PckTcb:
    """What a PCK certificate says about its platform: the values TCB evaluation uses."""

    ppid: bytes  # 16 bytes
    component_svns: tuple[int, ...]  # 16 values, 0..255
    pce_svn: int
    cpu_svn: bytes  # 16 bytes
    pce_id: bytes  # 2 bytes
    fmspc: bytes  # 6 bytes
    sgx_type: int = 0  # 0 = Standard

    def __post_init__(self) -> None:
        if len(self.component_svns) != 16 or not all(0 <= s <= 255 for s in self.component_svns):
            raise ValueError("component_svns must be 16 values in 0..255")
        for name, value, size in (
            ("ppid", self.ppid, 16),
            ("cpu_svn", self.cpu_svn, 16),
            ("pce_id", self.pce_id, 2),
            ("fmspc", self.fmspc, 6),
        ):
            if len(value) != size:
                raise ValueError(f"{name} must be {size} bytes, got {len(value)}")


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(_OID, bytes(body))


def _integer(value: int) -> bytes:
    # Minimal two's-complement: 255 becomes 00 FF, as in Intel's certificates.
    size = value.bit_length() // 8 + 1
    return _tlv(_INTEGER, value.to_bytes(size, "big", signed=True))


def _entry(oid: str, value: bytes) -> bytes:
    return _tlv(_SEQUENCE, _oid(oid) + value)


def encode_sgx_extension(tcb: PckTcb) -> bytes:
    """The DER value of the SGX extension for this platform description."""
    base = SGX_EXTENSION_OID
    tcb_entries = [_entry(f"{base}.2.{i + 1}", _integer(svn)) for i, svn in enumerate(tcb.component_svns)]
    tcb_entries.append(_entry(f"{base}.2.17", _integer(tcb.pce_svn)))
    tcb_entries.append(_entry(f"{base}.2.18", _tlv(_OCTET_STRING, tcb.cpu_svn)))
    entries = [
        _entry(f"{base}.1", _tlv(_OCTET_STRING, tcb.ppid)),
        _entry(f"{base}.2", _tlv(_SEQUENCE, b"".join(tcb_entries))),
        _entry(f"{base}.3", _tlv(_OCTET_STRING, tcb.pce_id)),
        _entry(f"{base}.4", _tlv(_OCTET_STRING, tcb.fmspc)),
        _entry(f"{base}.5", _tlv(_ENUMERATED, bytes([tcb.sgx_type]))),
    ]
    return _tlv(_SEQUENCE, b"".join(entries))
