"""The one error type API handlers and operations raise; rendered as GitLab does."""

from __future__ import annotations


class ApiError(Exception):
    """An HTTP error with GitLab's ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str | dict[str, object]) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(404, f"404 {what} Not Found")


def unauthorized() -> ApiError:
    return ApiError(401, "401 Unauthorized")


def forbidden() -> ApiError:
    return ApiError(403, "403 Forbidden")


def not_allowed() -> ApiError:
    return ApiError(405, "405 Method Not Allowed")

