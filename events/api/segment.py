"""Segment's HTTP tracking API, so Segment and RudderStack SDKs work by changing the host.

Routes: /v1/identify, /v1/track, /v1/screen, /v1/page, /v1/group, /v1/alias, /v1/batch.
The write key comes as the Basic auth user name (empty password), as a Bearer token, or as
``writeKey`` in the body. Success is exactly 200 (some clients retry anything else).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from events.api import schemas
from events.ingestion import (
    MAX_MESSAGE_ID_LENGTH,
    IncomingMessage,
    ItemResult,
    ingest,
    new_message_id,
    rejected,
)
from events.payloads import (
    as_id,
    as_object,
    as_text,
    check_message,
    event_time,
    json_problem,
    parse_json_object,
    parse_timestamp,
    read_body,
)
from profiles.attributes import traits_to_ops
from profiles.authentication import AppKey, app_for_key, key_from_header
from profiles.identity import IdentityRequest
from pushapp.api import ApplicationError, error_body

MESSAGE_TYPES = ("identify", "track", "screen", "page", "group", "alias")


def _error_response(error: ApplicationError) -> JsonResponse:
    response = JsonResponse(
        error_body(error.code, error.message, error.details), status=error.status_code
    )
    if error.status_code == 401:
        response["WWW-Authenticate"] = 'Basic realm="pushapp"'
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def _authenticate(request: HttpRequest, body: dict[str, Any] | None) -> AppKey | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    raw_key: str | None = None
    if header:
        try:
            raw_key = key_from_header(header)
        except exceptions.AuthenticationFailed as exc:
            raise ApplicationError(str(exc.detail), code="unauthorized", status_code=401) from None
    if raw_key is None and body is not None:
        write_key = body.get("writeKey")
        raw_key = write_key if isinstance(write_key, str) else None
    if raw_key is None:
        return None
    app_key = app_for_key(raw_key)
    if app_key is None:
        raise ApplicationError("Unknown write key.", code="unauthorized", status_code=401)
    return app_key


def _merge_context(batch_context: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Batch-level context under the message's own (the message wins, one level deep)."""
    if not batch_context:
        return context
    merged = dict(batch_context)
    for key, value in context.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _text_or_none(container: dict[str, Any], key: str) -> str | None:
    value = container.get(key)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:128]


def device_facts(context: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """``(device fields, device attributes, push token)`` from a Segment context."""
    device = context.get("device") if isinstance(context.get("device"), dict) else {}
    os_info = context.get("os") if isinstance(context.get("os"), dict) else {}
    app_info = context.get("app") if isinstance(context.get("app"), dict) else {}
    library = context.get("library") if isinstance(context.get("library"), dict) else {}
    assert isinstance(device, dict) and isinstance(os_info, dict)
    assert isinstance(app_info, dict) and isinstance(library, dict)
    os_name = _text_or_none(os_info, "name")
    platform = _text_or_none(device, "type") or (os_name.lower() if os_name else None)
    fields: dict[str, Any] = {
        "platform": platform[:32] if platform else None,
        "os_name": os_name[:64] if os_name else None,
        "os_version": _text_or_none(os_info, "version"),
        "model": _text_or_none(device, "model"),
        "manufacturer": _text_or_none(device, "manufacturer"),
        "app_version": _text_or_none(app_info, "version"),
        "app_build": _text_or_none(app_info, "build"),
        "sdk_name": _text_or_none(library, "name"),
        "sdk_version": _text_or_none(library, "version"),
        "locale": (_text_or_none(context, "locale") or "")[:35] or None,
        "timezone": _text_or_none(context, "timezone"),
    }
    attributes: dict[str, Any] = {}
    if device.get("id") is not None:
        attributes["hardware_id"] = str(device["id"])[:255]
    if isinstance(device.get("adTrackingEnabled"), bool):
        attributes["ad_tracking_enabled"] = device["adTrackingEnabled"]
    token = device.get("token")
    push_token = str(token)[:512] if isinstance(token, str) and token else None
    if push_token is not None:
        fields["push_opt_in"] = True
    return {k: v for k, v in fields.items() if v is not None}, attributes, push_token


def normalize(
    raw: Any,
    *,
    index: int,
    message_type: str | None,
    batch_context: dict[str, Any],
    batch_sent_at: datetime | None,
    received_at: datetime,
) -> IncomingMessage:
    """Validate one Segment message and map it onto an :class:`IncomingMessage`."""
    if not isinstance(raw, dict):
        raise ApplicationError("Each message must be a JSON object.", code="invalid_message")
    check_message(raw)
    kind = message_type or raw.get("type")
    if kind not in MESSAGE_TYPES:
        raise ApplicationError(
            f"Unknown message type {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}.",
            code="invalid_type",
        )
    user_id = as_id(raw.get("userId"), "userId")
    anonymous_id = as_id(raw.get("anonymousId"), "anonymousId")
    previous_id = as_id(raw.get("previousId"), "previousId") if kind == "alias" else None
    if kind == "alias":
        if not user_id or not previous_id:
            raise ApplicationError("alias needs userId and previousId.", code="missing_ids")
    elif user_id is None and anonymous_id is None:
        raise ApplicationError("userId or anonymousId is required.", code="missing_ids")
    message_id = raw.get("messageId")
    if message_id is None or message_id == "":
        message_id = new_message_id()
    elif isinstance(message_id, bool) or not isinstance(message_id, str | int):
        raise ApplicationError("messageId must be a string.", code="invalid_message_id")
    message_id = str(message_id)
    if len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise ApplicationError(
            f"messageId is longer than {MAX_MESSAGE_ID_LENGTH} characters.",
            code="invalid_message_id",
        )
    context = _merge_context(batch_context, as_object(raw.get("context"), "context"))
    client_time = parse_timestamp(raw.get("timestamp"), field="timestamp") or parse_timestamp(
        raw.get("originalTimestamp"), field="originalTimestamp"
    )
    sent_at = parse_timestamp(raw.get("sentAt"), field="sentAt") or batch_sent_at
    timestamp, original_timestamp = event_time(
        timestamp=client_time, sent_at=sent_at, received_at=received_at
    )
    properties: dict[str, Any]
    name = ""
    ops = []
    if kind == "track":
        name = as_text(raw.get("event"), "event", required=True)
        properties = as_object(raw.get("properties"), "properties")
    elif kind in ("screen", "page"):
        name = as_text(raw.get("name"), "name") or as_text(
            as_object(raw.get("properties"), "properties").get("name"), "properties.name"
        )
        properties = as_object(raw.get("properties"), "properties")
        if kind == "page" and raw.get("category") is not None:
            properties = {**properties, "category": raw.get("category")}
    elif kind == "identify":
        traits = as_object(raw.get("traits"), "traits") or as_object(
            context.get("traits"), "context.traits"
        )
        properties = traits
        ops = traits_to_ops(traits)
    elif kind == "group":
        group_id = as_id(raw.get("groupId"), "groupId")
        if not group_id:
            raise ApplicationError("group needs groupId.", code="missing_field")
        name = group_id
        properties = {"groupId": group_id, "traits": as_object(raw.get("traits"), "traits")}
    else:  # alias
        properties = {"previousId": previous_id}
    fields, device_attributes, push_token = (
        device_facts(context) if anonymous_id else ({}, {}, None)
    )
    return IncomingMessage(
        identity=IdentityRequest(
            index=index,
            timestamp=timestamp,
            device_key=anonymous_id,
            user_id=user_id,
            previous_id=previous_id,
            action="alias" if kind == "alias" else "message",
            device_fields=fields,
            device_attributes=device_attributes,
            push_token=push_token,
            attribute_ops=ops,
        ),
        type=kind,
        name=name,
        message_id=message_id,
        properties=properties,
        context=context,
        original_timestamp=original_timestamp,
    )


def _handle(request: HttpRequest, message_type: str | None) -> JsonResponse:
    received_at = timezone.now()
    try:
        app_key = _authenticate(request, None) if request.META.get("HTTP_AUTHORIZATION") else None
        body = parse_json_object(read_body(request))
        if app_key is None:
            app_key = _authenticate(request, body)
        if app_key is None:
            raise ApplicationError(
                "A write key is required: Basic auth user name, Bearer token or writeKey.",
                code="unauthorized",
                status_code=401,
            )
        if message_type is None:
            raw_messages = body.get("batch")
            if not isinstance(raw_messages, list):
                raise ApplicationError("batch must be an array of messages.", code="invalid_batch")
            if len(raw_messages) > settings.INGEST_MAX_BATCH_MESSAGES:
                raise ApplicationError(
                    f"A batch holds at most {settings.INGEST_MAX_BATCH_MESSAGES} messages; "
                    f"this one has {len(raw_messages)}.",
                    code="batch_too_large",
                    details={"limit": settings.INGEST_MAX_BATCH_MESSAGES},
                )
            batch_context = as_object(body.get("context"), "context")
            if (problem := json_problem(batch_context)) is not None:
                raise ApplicationError(problem[1], code=problem[0])
            batch_sent_at = parse_timestamp(body.get("sentAt"), field="sentAt")
        else:
            raw_messages = [body]
            batch_context, batch_sent_at = {}, None
        messages: list[IncomingMessage] = []
        refused: list[ItemResult] = []
        for index, raw in enumerate(raw_messages):
            try:
                messages.append(
                    normalize(
                        raw,
                        index=index,
                        message_type=message_type,
                        batch_context=batch_context,
                        batch_sent_at=batch_sent_at,
                        received_at=received_at,
                    )
                )
            except ApplicationError as error:
                if message_type is not None:
                    raise  # a single-message route: the message is the request
                refused.append(rejected(index, error))
        source = "server" if app_key.is_server else "sdk"
        result = ingest(
            app=app_key.app,
            messages=messages,
            received_at=received_at,
            source=source,
            prior_results=refused,
        )
        if message_type is not None and result.errors:
            first = result.errors[0]
            raise ApplicationError(first["message"], code=first["code"])
    except ApplicationError as error:
        return _error_response(error)
    return JsonResponse(result.as_json(), status=200)


class SegmentView(APIView):
    """One Segment route. Keys and bodies are read by this module itself (the write key may
    sit in the body; bodies may be gzip whatever their Content-Type)."""

    message_type: str | None = None
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes: list[Any] = []

    def post(self, request: Request) -> HttpResponse:
        return _handle(request._request, self.message_type)


def _segment_route(message_type: str | None, summary: str) -> type[SegmentView]:
    request_schema = (
        schemas.SegmentBatchSerializer if message_type is None else schemas.SegmentMessageSerializer
    )

    class Route(SegmentView):
        @extend_schema(
            request=request_schema,
            responses={200: schemas.BatchResultSerializer},
            summary=summary,
            tags=["segment"],
            auth=[{"writeKeyBasic": []}, {"bearerKey": []}, {}],  # type: ignore[list-item]
        )
        def post(self, request: Request) -> HttpResponse:
            return super().post(request)

    Route.message_type = message_type
    Route.__name__ = Route.__qualname__ = f"Segment{(message_type or 'batch').title()}View"
    return Route


SegmentIdentifyView = _segment_route("identify", "Identify a user (Segment)")
SegmentTrackView = _segment_route("track", "Track an event (Segment)")
SegmentScreenView = _segment_route("screen", "Record a screen view (Segment)")
SegmentPageView = _segment_route("page", "Record a page view (Segment)")
SegmentGroupView = _segment_route("group", "Associate a user with a group (Segment)")
SegmentAliasView = _segment_route("alias", "Alias a previous id to a user id (Segment)")
SegmentBatchView = _segment_route(None, "Send a batch of messages (Segment)")
