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


def not_found(group: str, plural: str, name: str) -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(
        404,
        f'{resource} "{name}" not found',
        "NotFound",
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'{resource} "{name}" already exists',
        "AlreadyExists",
        {"name": name, "group": group, "kind": plural},
    )


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {resource} "{name}": {why}',
        "Conflict",
        {"name": name, "group": group, "kind": plural},
    )


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
    qualified = f"{kind}.{group}" if group else kind
    summary = "; ".join(f"{c['field']}: {c['message']}" for c in causes) or "invalid object"
    return ApiError(
        422,
        f'{qualified} "{name}" is invalid: {summary}',
        "Invalid",
        {"name": name, "group": group, "kind": kind, "causes": list(causes)},
    )


def gone(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, message, "UnsupportedMediaType")
