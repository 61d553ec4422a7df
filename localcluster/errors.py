"""Kubernetes-style API errors: every failure leaves the server as a `kind: Status` body."""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


class ApiError(Exception):
    """An error that is answered as a Kubernetes `Status` object with the given HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success_status(name: str, group: str, kind: str, uid: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    if uid:
        details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _object_error(
    code: int, reason: str, message: str, group: str, kind: str, name: str, **more: Any
) -> ApiError:
    """An error about one object; details name it as kube-apiserver does."""
    return ApiError(code, message, reason, {"name": name, "group": group, "kind": kind, **more})


def not_found(group: str, plural: str, name: str) -> ApiError:
    message = f'{_qualified(plural, group)} "{name}" not found'
    return _object_error(404, "NotFound", message, group, plural, name)


def already_exists(group: str, plural: str, name: str) -> ApiError:
    message = f'{_qualified(plural, group)} "{name}" already exists'
    return _object_error(409, "AlreadyExists", message, group, plural, name)


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}'
    return _object_error(409, "Conflict", message, group, plural, name)


def stale_conflict(group: str, plural: str, name: str) -> ApiError:
    return conflict(
        group,
        plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


class Cause(dict[str, str]):
    """One `details.causes[]` entry: which field is wrong and why."""

    def __init__(self, field: str, message: str, reason: str = "FieldValueInvalid") -> None:
        super().__init__(reason=reason, message=message, field=field)


def invalid(group: str, kind: str, name: str, causes: list[Cause]) -> ApiError:
    summary = "; ".join(f"{c['field']}: {c['message']}" for c in causes) or "invalid object"
    message = f'{_qualified(kind, group)} "{name}" is invalid: {summary}'
    return _object_error(422, "Invalid", message, group, kind, name, causes=list(causes))


def gone(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, message, "UnsupportedMediaType")
