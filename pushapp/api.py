"""HTTP plumbing shared by every API: orjson rendering/parsing and the one JSON error shape.

Every error leaves as ``{"code": ..., "message": ..., "details": ...}`` at the top level:
Segment-family clients read ``code`` and ``message`` there.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A domain error raised by services; the exception handler maps it to the JSON shape."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        details: Any = None,
        status_code: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.retry_after = retry_after
        if status_code is not None:
            self.status_code = status_code


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS, default=str)
        except TypeError:
            # PostgreSQL hands big JSON numbers (1e30) back as integers past 64 bits, which
            # orjson refuses; the standard library writes them.
            return json.dumps(data, default=str).encode()


class OrjsonParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise exceptions.ParseError(f"Request body is not valid JSON: {exc}") from exc


_DRF_CODES = {
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "invalid_json",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
    exceptions.NotAcceptable: "not_acceptable",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return Response(
            error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=retry
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(code, "The request is invalid.", exc.detail)
    else:
        body = error_body(code, str(exc.detail))
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        # DRF turns 401 into 403 without a WWW-Authenticate header; keep it a 401.
        headers["WWW-Authenticate"] = 'Bearer realm="pushapp"'
        return Response(body, status=status.HTTP_401_UNAUTHORIZED, headers=headers)
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait or 1))  # type: ignore[attr-defined]
    return Response(body, status=exc.status_code, headers=headers)
