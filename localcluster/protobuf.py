"""Decoding of the few protobuf request bodies kubectl sends for built-in kinds.

`kubectl create namespace|configmap|secret|serviceaccount` use typed clients that send
`application/vnd.kubernetes.protobuf` and do not fall back to JSON. Those messages are small
and stable, so they are decoded here field by field (numbers from the upstream generated.proto).
Other kinds get a clean 415.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"
Fields = list[tuple[int, int, Any]]  # (field number, wire type, value)


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise ProtobufError("expected a string field")
    return raw.decode()


def _map(entries: list[bytes], bytes_values: bool = False) -> dict[str, str]:
    result = {}
    for entry in entries:
        parts = {n: v for n, _, v in _fields(entry)}
        value = parts.get(2, b"")
        result[_text(parts.get(1, b""))] = (
            base64.b64encode(value).decode() if bytes_values else _text(value)
        )
    return result


def _grouped(data: bytes) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for number, _, value in _fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def _time(data: bytes) -> str:
    seconds = _grouped(data).get(1, [0])[0]
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(data: bytes) -> dict[str, Any]:
    f = _grouped(data)
    ref: dict[str, Any] = {}
    for number, key in ((5, "apiVersion"), (1, "kind"), (3, "name"), (4, "uid")):
        if number in f:
            ref[key] = _text(f[number][0])
    for number, key in ((6, "controller"), (7, "blockOwnerDeletion")):
        if number in f:
            ref[key] = bool(f[number][0])
    return ref


def _metadata(data: bytes) -> dict[str, Any]:
    f = _grouped(data)
    meta: dict[str, Any] = {}
    for number, key in (
        (1, "name"),
        (2, "generateName"),
        (3, "namespace"),
        (5, "uid"),
        (6, "resourceVersion"),
    ):
        if number in f and f[number][0]:
            meta[key] = _text(f[number][0])
    if 8 in f and f[8][0]:
        meta["creationTimestamp"] = _time(f[8][0])
    if 11 in f:
        meta["labels"] = _map(f[11])
    if 12 in f:
        meta["annotations"] = _map(f[12])
    if 13 in f:
        meta["ownerReferences"] = [_owner(v) for v in f[13]]
    if 14 in f:
        meta["finalizers"] = [_text(v) for v in f[14]]
    return meta


def _namespace(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        finalizers = [_text(v) for v in _grouped(f[2][0]).get(1, [])]
        obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _configmap(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        obj["data"] = _map(f[2])
    if 3 in f:
        obj["binaryData"] = _map(f[3], bytes_values=True)
    if 4 in f:
        obj["immutable"] = bool(f[4][0])
    return obj


def _secret(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 2 in f:
        obj["data"] = _map(f[2], bytes_values=True)
    if 3 in f:
        obj["type"] = _text(f[3][0])
    if 4 in f:
        obj["stringData"] = _map(f[4])
    if 5 in f:
        obj["immutable"] = bool(f[5][0])
    return obj


def _serviceaccount(f: dict[int, list[Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if 3 in f:
        obj["imagePullSecrets"] = [{"name": _text(_grouped(v).get(1, [b""])[0])} for v in f[3]]
    if 4 in f:
        obj["automountServiceAccountToken"] = bool(f[4][0])
    return obj


DECODERS: dict[tuple[str, str], Callable[[dict[int, list[Any]]], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _serviceaccount,
}


def decode(raw: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a `k8s\\x00`-framed protobuf body (415 for unknown kinds)."""
    if not raw.startswith(MAGIC):
        raise ApiError(400, "protobuf body lacks the k8s envelope", "BadRequest")
    try:
        envelope = _grouped(raw[len(MAGIC) :])
        type_meta = _grouped(envelope.get(1, [b""])[0])
        api_version = _text(type_meta.get(1, [b""])[0])
        kind = _text(type_meta.get(2, [b""])[0])
        decoder = DECODERS.get((api_version, kind))
        if decoder is None:
            raise ApiError(
                415,
                f"protobuf bodies for {api_version}/{kind} are not supported; send JSON or YAML "
                "(e.g. kubectl apply -f)",
                "UnsupportedMediaType",
            )
        message = _grouped(envelope.get(2, [b""])[0])
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        obj["metadata"] = _metadata(message[1][0]) if 1 in message else {}
        obj.update(decoder(message))
        return obj
    except (ProtobufError, UnicodeDecodeError, IndexError, TypeError) as error:
        raise ApiError(
            400, f"the protobuf body could not be decoded: {error}", "BadRequest"
        ) from None
