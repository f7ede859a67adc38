"""API errors in Pipedrive's envelope."""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    410: "Gone",
    429: "Too many requests",
    500: "Internal server error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, info: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.info = info

    def body(self) -> dict[str, Any]:
        return {
            "success": False,
            "error": self.message,
            "errorCode": self.status,
            "error_info": self.info
            or "Please check developers.pipedrive.com for more information about Pipedrive API.",
            "data": None,
            "additional_data": None,
        }


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")
