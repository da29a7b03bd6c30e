"""The provider's error responses, as one exception type the HTTP layer turns into a body and a status."""

from __future__ import annotations

# The `type` field the provider pairs with each HTTP status.
_TYPES: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServiceError",
    502: "BadGateway",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error answer: HTTP status, provider error code and a message a person can act on."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        param: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.param = param  # the request field at fault, which the native Ark dialect names in its error body

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "Error")

    def body(self, shape: str) -> dict[str, object]:
        """`nested` is the documented `{"error": {...}}`; `flat` is what some gateways send instead."""
        if shape == "flat":
            return {"code": self.code, "message": self.message}
        return {"error": {"code": self.code, "message": self.message, "type": self.type}}

    def ark_body(self) -> dict[str, object]:
        """The native Ark platform's error body: always nested, and it names the parameter at fault."""
        return {"error": {"code": self.code, "message": self.message, "param": self.param, "type": self.type}}


def invalid_parameter(field: str, reason: str) -> ApiError:
    """400 naming the offending field, worded like the provider's own messages."""
    return ApiError(
        400,
        "InvalidParameter",
        f"The parameter `{field}` specified in the request is not valid: {reason}",
        param=field,
    )


def format_retry_after(seconds: float) -> str:
    """Retry-After is delta-seconds; whole numbers go out as integers, fractions (fast tests) as decimals."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"
