"""The message Lighter signs for a tx, and its tx hash: a Poseidon2 hash (to GF(p^5)) of the
chain id, tx type, nonce, expiry, account, api key and the tx's own fields, in the order of
elliottech/lighter-go ``types/txtypes/<tx>.go`` ``Hash(lighterChainId)``; when the tx carries
non-nil ``L2TxAttributes`` the result is hashed again with the attributes' hash
(``tx_attributes.go`` ``AggregateTxHash``). The tx hash Lighter reports is the hex of the
40 little-endian bytes of that element.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from services.venue_sim.crypto import field
from services.venue_sim.crypto.poseidon2 import hash_no_pad, hash_to_fp5, hash_two_to_one

CHANGE_PUB_KEY = 8
CREATE_ORDER = 14
CANCEL_ORDER = 15
CANCEL_ALL_ORDERS = 16
MODIFY_ORDER = 17
UPDATE_LEVERAGE = 20
CREATE_GROUPED_ORDERS = 28
UPDATE_MARGIN = 29

_ORDER_FIELDS = ("MarketIndex", "ClientOrderIndex", "BaseAmount", "Price", "IsAsk", "Type",
                 "TimeInForce", "ReduceOnly", "TriggerPrice", "OrderExpiry")

_ATTRIBUTE_NIL = {1: 0, 2: 0, 3: 0, 4: 0, 5: 255, 6: 0, 7: 0}
"""Attribute type -> its nil value (lighter-go ``AttributeTypeToConfig``): 1 integrator account,
2/3 integrator taker/maker fee, 4 skip nonce, 5 cancel-all market index, 6/7 self-trade modes."""
_ATTRIBUTES_PER_TX = 4


class TxFormatError(ValueError):
    """The tx info lacks a field the hash needs, or a field has the wrong type."""


def _int(info: dict[str, Any], key: str) -> int:
    v = info.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TxFormatError(f"{key} must be an integer")
    return v


def decode_pub_key(value: Any) -> bytes:
    """A public key as the tx info carries it (base64, as Go marshals ``[]byte``) or as
    ``create_api_key`` returns it (hex, optional ``0x``), as 40 bytes.

    Raises:
        TxFormatError: not a string of 40 bytes in either form.
    """
    if not isinstance(value, str):
        raise TxFormatError("PubKey must be a string")
    text = value[2:] if value.startswith("0x") else value
    if len(text) == 80:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TxFormatError("PubKey is neither hex nor base64") from exc
    if len(raw) != 40:
        raise TxFormatError("PubKey must be 40 bytes")
    return raw


def _head(tx_type: int, info: dict[str, Any], chain_id: int) -> list[int]:
    return [chain_id, tx_type, _int(info, "Nonce"), _int(info, "ExpiredAt"),
            _int(info, "AccountIndex"), _int(info, "ApiKeyIndex")]


def _create_order(info: dict[str, Any]) -> list[int]:
    return [_int(info, k) for k in _ORDER_FIELDS]


def _cancel_order(info: dict[str, Any]) -> list[int]:
    return [_int(info, "MarketIndex"), _int(info, "Index")]


def _cancel_all(info: dict[str, Any]) -> list[int]:
    return [_int(info, "TimeInForce"), _int(info, "Time")]


def _modify_order(info: dict[str, Any]) -> list[int]:
    return [_int(info, k) for k in ("MarketIndex", "Index", "BaseAmount", "Price", "TriggerPrice")]


def _update_leverage(info: dict[str, Any]) -> list[int]:
    return [_int(info, k) for k in ("MarketIndex", "InitialMarginFraction", "MarginMode")]


def _update_margin(info: dict[str, Any]) -> list[int]:
    amount = _int(info, "USDCAmount")
    return [_int(info, "MarketIndex"), amount & 0xFFFF_FFFF, amount >> 32, _int(info, "Direction")]


def _change_pub_key(info: dict[str, Any]) -> list[int]:
    try:
        key = field.from_bytes(decode_pub_key(info.get("PubKey")))
    except field.EncodingError as exc:
        raise TxFormatError(f"PubKey: {exc}") from exc
    return list(key)


def _grouped_orders(info: dict[str, Any]) -> list[int]:
    orders = info.get("Orders")
    if not isinstance(orders, list) or not orders or not all(isinstance(o, dict) for o in orders):
        raise TxFormatError("Orders must be a non-empty list of orders")
    aggregate: list[int] = [0, 0, 0, 0]
    for i, order in enumerate(orders):
        h = hash_no_pad(_int(order, k) for k in _ORDER_FIELDS)
        aggregate = h if i == 0 else hash_two_to_one(aggregate, h)
    return [_int(info, "GroupingType"), *aggregate]


_BODIES: dict[int, Callable[[dict[str, Any]], list[int]]] = {
    CHANGE_PUB_KEY: _change_pub_key,
    CREATE_ORDER: _create_order,
    CANCEL_ORDER: _cancel_order,
    CANCEL_ALL_ORDERS: _cancel_all,
    MODIFY_ORDER: _modify_order,
    UPDATE_LEVERAGE: _update_leverage,
    CREATE_GROUPED_ORDERS: _grouped_orders,
    UPDATE_MARGIN: _update_margin,
}

SUPPORTED_TX_TYPES: frozenset[int] = frozenset(_BODIES)
"""Tx types whose message/tx hash this module computes."""


def _attributes(info: dict[str, Any]) -> list[tuple[int, int]]:
    """Non-nil ``L2TxAttributes`` as sorted (type, value) pairs (JSON keys are decimal strings)."""
    raw = info.get("L2TxAttributes")
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise TxFormatError("L2TxAttributes must be an object or null")
    pairs = []
    for key, value in raw.items():
        try:
            typ = int(key)
        except (TypeError, ValueError) as exc:
            raise TxFormatError("L2TxAttributes keys must be attribute types") from exc
        if typ not in _ATTRIBUTE_NIL or isinstance(value, bool) or not isinstance(value, int):
            raise TxFormatError(f"invalid L2TxAttributes entry {key!r}")
        if value != _ATTRIBUTE_NIL[typ]:
            pairs.append((typ, value))
    if len(pairs) > _ATTRIBUTES_PER_TX:
        raise TxFormatError("too many L2TxAttributes")
    return sorted(pairs)


def message(tx_type: int, info: dict[str, Any], chain_id: int) -> field.Fp5:
    """The GF(p^5) element Lighter's signer signs for this tx.

    Raises:
        TxFormatError: ``tx_type`` not in :data:`SUPPORTED_TX_TYPES`, or a field missing/invalid.
    """
    body = _BODIES.get(tx_type)
    if body is None:
        raise TxFormatError(f"tx type {tx_type} is not supported")
    if not isinstance(info, dict):
        raise TxFormatError("tx info must be an object")
    digest = hash_to_fp5([*_head(tx_type, info, chain_id), *body(info)])
    attrs = _attributes(info)
    if not attrs:
        return digest
    padded = attrs + [(0, 0)] * (_ATTRIBUTES_PER_TX - len(attrs))
    attr_digest = hash_to_fp5(v for pair in padded for v in pair)
    return hash_to_fp5([*digest, *attr_digest])


def tx_hash(tx_type: int, info: dict[str, Any], chain_id: int) -> str:
    """The tx hash the signer returns (80 hex chars, no ``0x``) for ``info`` (the tx_info
    JSON object) of ``tx_type`` on ``chain_id``.

    Raises:
        TxFormatError: unsupported tx type or a missing/invalid field.
    """
    return field.to_bytes(message(tx_type, info, chain_id)).hex()
