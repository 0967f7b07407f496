"""Reading untrusted request bodies: size caps, gzip with a cap, JSON that PostgreSQL can store,
and message timestamps. Everything here raises :class:`ApplicationError` (a 400), never a 500.
"""

from __future__ import annotations

import math
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest

from pushapp.api import ApplicationError

MAX_JSON_DEPTH = 32
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(hours=24)


def read_body(request: HttpRequest, *, max_bytes: int | None = None) -> bytes:
    """The request body, inflated when gzip-encoded, refusing anything past ``max_bytes``
    before reading it all (Content-Length) and while inflating (a gzip bomb stops at the cap)."""
    cap = max_bytes or settings.INGEST_MAX_REQUEST_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared_length = int(declared)
    except ValueError:
        raise ApplicationError("Content-Length is not a number.", code="invalid_request") from None
    if declared_length > cap:
        raise _too_large(cap)
    raw = request.read(cap + 1)
    if len(raw) > cap:
        raise _too_large(cap)
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in {"", "identity"}:
        return raw
    if encoding not in {"gzip", "x-gzip", "deflate"}:
        raise ApplicationError(
            f"Content-Encoding {encoding!r} is not supported (use gzip).",
            code="unsupported_encoding",
            status_code=415,
        )
    window = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(window)
    try:
        inflated = inflater.decompress(raw, cap + 1)
        if len(inflated) > cap or inflater.unconsumed_tail:
            raise _too_large(cap, inflated=True)
        inflated += inflater.flush()
    except zlib.error as exc:
        raise ApplicationError(
            f"The body is not valid {encoding}: {exc}", code="invalid_gzip"
        ) from None
    if len(inflated) > cap:
        raise _too_large(cap, inflated=True)
    if not inflater.eof:
        raise ApplicationError(f"The {encoding} body is truncated.", code="invalid_gzip")
    return inflated


def _too_large(cap: int, *, inflated: bool = False) -> ApplicationError:
    what = "inflated body" if inflated else "request body"
    return ApplicationError(
        f"The {what} exceeds the limit of {cap // 1024} KB per request.",
        code="request_too_large",
        details={"limit_bytes": cap},
    )


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object that PostgreSQL can store (see :func:`json_problem`)."""
    if not body.strip():
        raise ApplicationError(
            "The request body is empty; a JSON object is expected.", code="invalid_json"
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "utf-8" in message.lower() or "surrogate" in message.lower():
            raise ApplicationError(
                f"The body is not valid UTF-8: {message}", code="invalid_utf8"
            ) from None
        lowered = message.lower()
        if "recursion" in lowered or "depth limit" in lowered:
            raise _too_deep() from None
        if "infinity" in lowered or "nan" in lowered.split():
            raise ApplicationError(
                "Numbers must be finite (1e400, NaN and Infinity cannot be stored).",
                code="invalid_number",
            ) from None
        raise ApplicationError(
            f"The body is not valid JSON: {message}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApplicationError(
            f"The body must be a JSON object, not {type(data).__name__}.", code="invalid_json"
        )
    return data


def _too_deep() -> ApplicationError:
    return ApplicationError(
        f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.",
        code="json_too_deep",
        details={"limit": MAX_JSON_DEPTH},
    )


def json_problem(value: Any, *, depth: int = 0) -> tuple[str, str] | None:
    """``(code, message)`` when ``value`` cannot be stored as JSONB, else None.

    PostgreSQL refuses NUL characters in text and JSONB, and numbers outside double range
    (orjson reads 1e400 as infinity); nesting is capped to keep walks like this one bounded.
    """
    if depth > MAX_JSON_DEPTH:
        return "json_too_deep", f"JSON is nested deeper than {MAX_JSON_DEPTH} levels."
    if isinstance(value, str):
        if "\x00" in value:
            return "nul_character", "Strings may not contain NUL (\\u0000) characters."
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return "nul_character", "Keys may not contain NUL (\\u0000) characters."
            problem = json_problem(item, depth=depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth=depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return (
            "invalid_number",
            "Numbers must be finite (1e400, NaN and Infinity cannot be stored).",
        )
    return None


def parse_timestamp(value: Any, *, field: str) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset; naive means UTC), or None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise ApplicationError(f"{field} must be an ISO 8601 string.", code="invalid_timestamp")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ApplicationError(
            f"{field} is not an ISO 8601 timestamp: {value!r}", code="invalid_timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # In UTC, as stored: an offset must not push it out of the representable years.
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ApplicationError(
            f"{field} is out of range: {value!r}", code="invalid_timestamp"
        ) from None


def event_time(
    *,
    timestamp: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
) -> tuple[datetime, datetime | None]:
    """``(timestamp, original_timestamp)`` after Segment's clock-skew correction
    (``received_at - (sent_at - timestamp)``) and the sanity window: before 2000-01-01 or more
    than 24 h ahead of the server, the receive time is used and the client's value kept."""
    if timestamp is None:
        return received_at, None
    corrected = timestamp
    if sent_at is not None:
        try:
            corrected = received_at - (sent_at - timestamp)
        except OverflowError:
            corrected = timestamp
    if corrected < EARLIEST_TIMESTAMP or corrected > received_at + MAX_CLOCK_AHEAD:
        return received_at, timestamp
    return corrected, None


def check_message(raw: dict[str, Any]) -> None:
    """One message within Segment's 32 KB and storable as JSONB, else a per-item error."""
    # The structure first: orjson cannot serialise what is nested past 254 levels.
    problem = json_problem(raw)
    if problem:
        raise ApplicationError(problem[1], code=problem[0])
    size = len(orjson.dumps(raw))
    limit = settings.INGEST_MAX_MESSAGE_BYTES
    if size > limit:
        raise ApplicationError(
            f"The message is {size} bytes; the limit is {limit // 1024} KB.",
            code="message_too_large",
            details={"limit_bytes": limit},
        )


def as_id(value: Any, field: str) -> str | None:
    """An id as text; None when absent or empty (an empty id names nobody)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApplicationError(f"{field} must be a string.", code="invalid_id")
    text = str(value)
    if len(text) > 255:
        raise ApplicationError(f"{field} is longer than 255 characters.", code="invalid_id")
    if "\x00" in text:
        raise ApplicationError(f"{field} may not contain NUL characters.", code="invalid_id")
    return text


def as_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApplicationError(f"{field} must be an object.", code="invalid_type")
    return value


def as_text(value: Any, field: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise ApplicationError(f"{field} is required.", code="missing_field")
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"{field} must be a string.", code="invalid_type")
    if len(value) > 255:
        raise ApplicationError(f"{field} is longer than 255 characters.", code="invalid_type")
    return value
