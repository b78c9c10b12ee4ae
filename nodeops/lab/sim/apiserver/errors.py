"""API errors as upstream's metav1.Status objects (k8s.io/apimachinery/pkg/api/errors)."""

from __future__ import annotations

from typing import Any

from nodeops.lab.sim.apiserver.resources import Resource


class ApiError(Exception):
    """An error the API answers with a Status object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        """The Status object."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(res: Resource, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    return details


def not_found(res: Resource, name: str) -> ApiError:
    """404: `pods "x" not found`."""
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def already_exists(res: Resource, name: str) -> ApiError:
    """409: `pods "x" already exists`."""
    return ApiError(
        409, "AlreadyExists", f'{res.qualified} "{name}" already exists', _details(res, name)
    )


def conflict(res: Resource, name: str, why: str) -> ApiError:
    """409: `Operation cannot be fulfilled on pods "x": why`."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}',
        _details(res, name),
    )


MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(res: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422: `Pod "x" is invalid: field: Reason: detail`; causes are (type, field, message)."""
    text = "; ".join(f"{field}: {msg}" for _, field, msg in causes)
    summary = text if len(causes) == 1 else f"[{text}]"
    details = _details(res, name)
    details["kind"] = res.kind
    details["causes"] = [{"reason": t, "message": m, "field": f} for t, f, m in causes]
    return ApiError(
        422,
        "Invalid",
        f'{res.kind}{"." + res.group if res.group else ""} "{name}" is invalid: {summary}',
        details,
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    """405: the verb is not served on this path."""
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def path_not_found() -> ApiError:
    """404 for an unknown path."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def unsupported_media_type(accepted: str) -> ApiError:
    """415 for a body in a format this endpoint does not decode."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + accepted,
    )


def unauthorized() -> ApiError:
    """401 without a valid client certificate."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def gone(message: str) -> ApiError:
    """410: resource version too old for a watch."""
    return ApiError(410, "Expired", message)


def internal(message: str) -> ApiError:
    """500 InternalError."""
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def too_many_requests(message: str, retry_after: int, causes: list[dict[str, str]]) -> ApiError:
    """429 TooManyRequests (evictions blocked by a disruption budget)."""
    details: dict[str, Any] = {"causes": causes}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return ApiError(429, "TooManyRequests", message, details, retry_after)
