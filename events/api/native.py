"""The native ingestion API under /api/v1/: devices, identify, logout and event batches.

Validation is explicit (no per-field DRF serializer on the hot path); the serializers in
``events.api.schemas`` only describe the payloads for the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events.api import schemas
from events.ingestion import (
    MAX_MESSAGE_ID_LENGTH,
    BatchResult,
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
from profiles.attributes import ops_from_body
from profiles.authentication import AppKey, HasAppKey, KeyAuthentication
from profiles.identity import DEVICE_FIELDS, IdentityRequest
from pushapp.api import ApplicationError

EVENT_TYPES = ("track", "screen", "page")
DEVICE_TEXT_LIMITS = {
    "platform": 32,
    "os_name": 64,
    "os_version": 64,
    "model": 128,
    "manufacturer": 128,
    "app_version": 64,
    "app_build": 64,
    "sdk_name": 64,
    "sdk_version": 64,
    "locale": 35,
    "timezone": 64,
}


def _body(request: Request) -> dict[str, Any]:
    body = parse_json_object(read_body(request._request))
    problem = json_problem(body)
    if problem:
        raise ApplicationError(problem[1], code=problem[0])
    return body


def _device_fields(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    fields: dict[str, Any] = {}
    for name, limit in DEVICE_TEXT_LIMITS.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApplicationError(f"{name} must be a string.", code="invalid_type")
        if len(value) > limit:
            raise ApplicationError(
                f"{name} is longer than {limit} characters.", code="invalid_type"
            )
        fields[name] = value
    if "push_opt_in" in body and body["push_opt_in"] is not None:
        if not isinstance(body["push_opt_in"], bool):
            raise ApplicationError("push_opt_in must be true or false.", code="invalid_type")
        fields["push_opt_in"] = body["push_opt_in"]
    token = body.get("push_token")
    if token is not None and (not isinstance(token, str) or len(token) > 512):
        raise ApplicationError(
            "push_token must be a string of at most 512 characters.", code="invalid_type"
        )
    assert set(fields) <= set(DEVICE_FIELDS)
    return fields, token


def _single(app_key: AppKey, message: IncomingMessage) -> BatchResult:
    result = ingest(
        app=app_key.app,
        messages=[message],
        received_at=timezone.now(),
        source="server" if app_key.is_server else "sdk",
    )
    if result.errors:
        error = result.errors[0]
        raise ApplicationError(error["message"], code=error["code"])
    return result


def _profile_json(item: ItemResult) -> dict[str, Any]:
    profile = item.profile
    assert profile is not None
    return {
        "profile_id": str(profile.public_id),
        "user_id": profile.user_id,
        "kind": profile.kind,
    }


class NativeView(APIView):
    authentication_classes = [KeyAuthentication]
    permission_classes = [HasAppKey]
    parser_classes: list[Any] = []  # bodies are read by events.payloads (caps, gzip)

    def app_key(self, request: Request) -> AppKey:
        assert isinstance(request.user, AppKey)
        return request.user


class DeviceRegisterView(NativeView):
    @extend_schema(
        request=schemas.DeviceRegisterSerializer,
        responses={200: schemas.DeviceResultSerializer},
        summary="Register or update a device",
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        device_id = as_id(body.get("device_id"), "device_id")
        if not device_id:
            raise ApplicationError("device_id is required.", code="missing_ids")
        fields, token = _device_fields(body)
        now = timezone.now()
        timestamp, _ = event_time(
            timestamp=parse_timestamp(body.get("timestamp"), field="timestamp"),
            sent_at=None,
            received_at=now,
        )
        message = IncomingMessage(
            identity=IdentityRequest(
                index=0,
                timestamp=timestamp,
                device_key=device_id,
                user_id=as_id(body.get("user_id"), "user_id"),
                device_fields=fields,
                push_token=token,
            ),
            type="register",
            store_event=False,
        )
        item = _single(self.app_key(request), message).items[0]
        device = item.device
        assert device is not None
        return Response(
            {
                "device_id": device.device_id,
                "push_token": device.push_token,
                "push_opt_in": device.push_opt_in,
                **_profile_json(item),
            }
        )


class IdentifyView(NativeView):
    @extend_schema(
        request=schemas.IdentifySerializer,
        responses={200: schemas.IdentifyResultSerializer},
        summary="Link a user id to a device, with attributes",
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        device_id = as_id(body.get("device_id"), "device_id")
        user_id = as_id(body.get("user_id"), "user_id")
        if not user_id:
            raise ApplicationError("user_id is required.", code="missing_ids")
        if not device_id and not self.app_key(request).is_server:
            raise ApplicationError(
                "device_id is required with the write key (the server key may identify by user id only).",
                code="missing_ids",
            )
        now = timezone.now()
        timestamp, original = event_time(
            timestamp=parse_timestamp(body.get("timestamp"), field="timestamp"),
            sent_at=None,
            received_at=now,
        )
        ops = ops_from_body(body)
        message = IncomingMessage(
            identity=IdentityRequest(
                index=0,
                timestamp=timestamp,
                device_key=device_id,
                user_id=user_id,
                attribute_ops=ops,
            ),
            type="identify",
            message_id=_message_id(body.get("message_id")),
            properties={op.key: op.value for op in ops if op.op == "set"},
            original_timestamp=original,
        )
        answer = _profile_json(_single(self.app_key(request), message).items[0])
        if message.identity.attribute_errors:
            # Refused attributes (kept in quarantine); the rest of the identify applied.
            answer["attribute_errors"] = message.identity.attribute_errors
        return Response(answer)


class LogoutView(NativeView):
    @extend_schema(
        request=None, responses={200: schemas.ProfileRefSerializer}, summary="Log out a device"
    )
    def post(self, request: Request, device_id: str) -> Response:
        device_key = as_id(device_id, "device_id")
        if device_key is None:
            raise ApplicationError("device_id is required.", code="missing_ids")
        message = IncomingMessage(
            identity=IdentityRequest(
                index=0, timestamp=timezone.now(), device_key=device_key, action="logout"
            ),
            type="logout",
            store_event=False,
        )
        return Response(_profile_json(_single(self.app_key(request), message).items[0]))


def _message_id(value: Any) -> str:
    if value is None or value == "":
        return new_message_id()
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApplicationError("message_id must be a string.", code="invalid_message_id")
    text = str(value)
    if len(text) > MAX_MESSAGE_ID_LENGTH:
        raise ApplicationError(
            f"message_id is longer than {MAX_MESSAGE_ID_LENGTH} characters.",
            code="invalid_message_id",
        )
    return text


def _native_event(raw: Any, *, index: int, app_key: AppKey, received_at: Any) -> IncomingMessage:
    if not isinstance(raw, dict):
        raise ApplicationError("Each event must be a JSON object.", code="invalid_message")
    device_id = as_id(raw.get("device_id"), "device_id")
    user_id = as_id(raw.get("user_id"), "user_id")
    if device_id is None and user_id is None:
        raise ApplicationError("device_id or user_id is required.", code="missing_ids")
    if device_id is None and not app_key.is_server:
        raise ApplicationError(
            "Events by user id only need the server key; SDKs send device_id.",
            code="server_key_required",
        )
    kind = raw.get("type") or "track"
    if kind not in EVENT_TYPES:
        raise ApplicationError(
            f"type must be one of {', '.join(EVENT_TYPES)}.", code="invalid_type"
        )
    timestamp, original = event_time(
        timestamp=parse_timestamp(raw.get("timestamp"), field="timestamp"),
        sent_at=None,
        received_at=received_at,
    )
    properties = as_object(raw.get("properties"), "properties")
    context = as_object(raw.get("context"), "context")
    session_id = raw.get("session_id")
    if session_id is not None:
        context = {**context, "session_id": as_id(session_id, "session_id")}
    return IncomingMessage(
        identity=IdentityRequest(
            index=index, timestamp=timestamp, device_key=device_id, user_id=user_id
        ),
        type=kind,
        name=as_text(raw.get("name"), "name", required=kind == "track"),
        message_id=_message_id(raw.get("message_id")),
        properties=properties,
        context=context,
        original_timestamp=original,
    )


class EventBatchView(NativeView):
    @extend_schema(
        request=schemas.EventBatchSerializer,
        responses={200: schemas.BatchResultSerializer},
        summary="Send a batch of events",
    )
    def post(self, request: Request) -> Response:
        received_at = timezone.now()
        app_key = self.app_key(request)
        body = parse_json_object(read_body(request._request))
        raw_events = body.get("events")
        if not isinstance(raw_events, list):
            raise ApplicationError("events must be an array.", code="invalid_batch")
        if len(raw_events) > settings.INGEST_MAX_BATCH_MESSAGES:
            raise ApplicationError(
                f"A batch holds at most {settings.INGEST_MAX_BATCH_MESSAGES} events.",
                code="batch_too_large",
                details={"limit": settings.INGEST_MAX_BATCH_MESSAGES},
            )
        messages: list[IncomingMessage] = []
        refused: list[ItemResult] = []
        for index, raw in enumerate(raw_events):
            try:
                if not isinstance(raw, dict):
                    raise ApplicationError(
                        "Each event must be a JSON object.", code="invalid_message"
                    )
                check_message(raw)
                messages.append(
                    _native_event(raw, index=index, app_key=app_key, received_at=received_at)
                )
            except ApplicationError as error:
                refused.append(rejected(index, error))
        result = ingest(
            app=app_key.app,
            messages=messages,
            received_at=received_at,
            source="server" if app_key.is_server else "sdk",
            prior_results=refused,
        )
        return Response(result.as_json())
