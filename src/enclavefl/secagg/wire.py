"""Masked-mode messages as bytes for the wire: canonical JSON, binary fields in base64 (never pickle).

    body = encode(ads)            # a KeyAdvertisement, ShareBundle or UnmaskShares, or a list of them / of names
    ads = decode_advertisements(body)

Every decoder raises MaskingRefused on anything malformed, so a bad message is refused like a bad upload.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from enclavefl.errors import MaskingRefused
from enclavefl.secagg.messages import KeyAdvertisement, ShareBundle, UnmaskShares

MAX_BODY_BYTES = 8 * 1024 * 1024  # a roster or answer for tens of thousands of owners; far above any real one


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb(text: object) -> bytes:
    if not isinstance(text, str):
        raise MaskingRefused("a binary field is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise MaskingRefused("a binary field is not valid base64") from None


def _dump(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _load(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise MaskingRefused(f"a masked-mode message is {len(body)} bytes, the limit is {MAX_BODY_BYTES}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MaskingRefused("a masked-mode message is not JSON") from None


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise MaskingRefused(f"a masked-mode message lacks the text field {key!r}")
    return value


def _items(body: bytes) -> list[dict[str, Any]]:
    raw = _load(body)
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise MaskingRefused("expected a list of masked-mode messages")
    return raw


def encode_advertisements(ads: Sequence[KeyAdvertisement]) -> bytes:
    return _dump(
        [
            {"owner": a.owner, "cipher": _b(a.cipher_public), "mask": _b(a.mask_public), "hash": _b(a.self_mask_hash)}
            for a in ads
        ]
    )


def decode_advertisements(body: bytes) -> list[KeyAdvertisement]:
    return [
        KeyAdvertisement(
            owner=_str(r, "owner"),
            cipher_public=_unb(r.get("cipher")),
            mask_public=_unb(r.get("mask")),
            self_mask_hash=_unb(r.get("hash")),
        )
        for r in _items(body)
    ]


def encode_bundles(bundles: Sequence[ShareBundle]) -> bytes:
    return _dump([{"sender": b.sender, "recipient": b.recipient, "sealed": _b(b.ciphertext)} for b in bundles])


def decode_bundles(body: bytes) -> list[ShareBundle]:
    return [
        ShareBundle(sender=_str(r, "sender"), recipient=_str(r, "recipient"), ciphertext=_unb(r.get("sealed")))
        for r in _items(body)
    ]


def encode_names(names: Sequence[str]) -> bytes:
    return _dump(list(names))


def decode_names(body: bytes) -> list[str]:
    raw = _load(body)
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise MaskingRefused("expected a list of owner names")
    return raw


def encode_answer(answer: UnmaskShares) -> bytes:
    return _dump(
        {
            "owner": answer.owner,
            "self_mask": {k: _b(v) for k, v in answer.self_mask_shares.items()},
            "mask_key": {k: _b(v) for k, v in answer.mask_key_shares.items()},
        }
    )


def decode_answer(body: bytes) -> UnmaskShares:
    raw = _load(body)
    if not isinstance(raw, dict):
        raise MaskingRefused("an unmask answer is a JSON object")
    tables = [raw.get("self_mask"), raw.get("mask_key")]
    if not all(isinstance(t, dict) for t in tables):
        raise MaskingRefused("an unmask answer carries two share tables")
    self_mask, mask_key = ({str(k): _unb(v) for k, v in t.items()} for t in tables)  # type: ignore[union-attr]
    return UnmaskShares(owner=_str(raw, "owner"), self_mask_shares=self_mask, mask_key_shares=mask_key)
