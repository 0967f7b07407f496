"""The server API on profiles (server key): profiles addressed by user id or, for guests, by
public id. Get, upsert (PUT replaces, PATCH applies), events, export, erase.

Thin views: bodies are read with the ingestion path's caps and checks, the rules live in
profiles/services.py and profiles/selectors.py.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from profiles.api.serializers import (
    ErasureOutSerializer,
    EventsPageSerializer,
    ProfileOutSerializer,
    ProfileWriteOutSerializer,
    ProfileWriteSerializer,
)
from profiles.attributes import AttributeOp, ops_from_body, parse_datetime
from profiles.authentication import AppKey, HasServerKey, KeyAuthentication
from profiles.models import Profile, ProfileErasure
from profiles.selectors import (
    MAX_EVENTS_PAGE,
    event_json,
    profile_events_page,
    profile_export_stream,
    profile_get_by_public_id,
    profile_get_by_user_id,
    suppression_exists,
)
from profiles.services import (
    ProfileWrite,
    profile_attributes_update,
    profile_erase,
    profile_upsert,
)
from pushapp.api import ApplicationError

WRITE_BODY_KEYS = {"attributes", "operations"}


class ServerView(APIView):
    authentication_classes = [KeyAuthentication]
    permission_classes = [HasServerKey]
    parser_classes: list[Any] = []  # bodies are read by _write_ops (caps, gzip, JSONB checks)

    def app_key(self, request: Request) -> AppKey:
        assert isinstance(request.user, AppKey)
        return request.user


def _out(profile: Profile) -> dict:
    return ProfileOutSerializer(profile).data  # type: ignore[return-value]


def _write_out(write: ProfileWrite) -> dict:
    return {
        **_out(write.profile),
        "created": write.created,
        "attribute_errors": write.attribute_errors,
    }


def _write_ops(request: Request) -> list[AttributeOp]:
    """The body of a PUT/PATCH as attribute operations; anything malformed is a 400 for the
    whole request (nothing applied). Values are checked per attribute later."""
    from events.payloads import json_problem, parse_json_object, read_body

    body = parse_json_object(read_body(request._request))
    problem = json_problem(body)
    if problem:
        raise ApplicationError(problem[1], code=problem[0])
    unknown = sorted(set(body) - WRITE_BODY_KEYS)
    if unknown:
        raise ApplicationError(
            f"Unknown field(s) {', '.join(unknown)}; a profile update takes attributes and "
            "operations.",
            code="unknown_field",
            details={"fields": unknown},
        )
    return ops_from_body(body)


def _erased(profile: Profile, request: Request) -> Response:
    erasure = profile_erase(profile=profile, via=ProfileErasure.Via.API)
    return Response(
        {
            "erased": True,
            "profile_id": str(erasure.public_id),
            "already_erased": False,
            "counts": erasure.counts,
        }
    )


WRITE_SCHEMA: dict[str, Any] = {
    # Bodies are read by _write_ops, not by DRF parsers: name the media type explicitly.
    "request": {"application/json": ProfileWriteSerializer},
    "responses": {200: ProfileWriteOutSerializer},
}
ERASE_RESPONSES = {
    200: ErasureOutSerializer,
    404: OpenApiResponse(description="No such profile."),
}


class ProfileByUserIdView(ServerView):
    @extend_schema(responses={200: ProfileOutSerializer}, summary="Get a profile by user id")
    def get(self, request: Request, user_id: str) -> Response:
        return Response(
            _out(profile_get_by_user_id(app=self.app_key(request).app, user_id=user_id))
        )

    @extend_schema(
        **WRITE_SCHEMA,
        summary="Create or replace a profile's attributes by user id",
        description=(
            "Upsert the identified profile of user_id: the attributes given are set and every "
            "other attribute is unset (set-once fields are kept), then operations apply in "
            "order. An erased (suppressed) user id answers 409 suppressed."
        ),
    )
    def put(self, request: Request, user_id: str) -> Response:
        ops = _write_ops(request)
        return Response(
            _write_out(
                profile_upsert(
                    app=self.app_key(request).app, user_id=user_id, ops=ops, replace=True
                )
            )
        )

    @extend_schema(
        **WRITE_SCHEMA,
        summary="Create or update a profile's attributes by user id",
        description=(
            "Upsert the identified profile of user_id: attributes are set, then operations "
            "apply in order; other attributes are left alone. An erased (suppressed) user id "
            "answers 409 suppressed."
        ),
    )
    def patch(self, request: Request, user_id: str) -> Response:
        ops = _write_ops(request)
        return Response(
            _write_out(profile_upsert(app=self.app_key(request).app, user_id=user_id, ops=ops))
        )

    @extend_schema(
        request=None,
        responses=ERASE_RESPONSES,
        summary="Erase a person by user id",
        description=(
            "Deletes the profile, its merged profiles, events, sessions, devices, aliases and "
            "quarantined values in one transaction, then suppresses its ids. Answers once "
            "everything is committed. Erasing an already erased user id answers 200 again."
        ),
    )
    def delete(self, request: Request, user_id: str) -> Response:
        app = self.app_key(request).app
        try:
            profile = profile_get_by_user_id(app=app, user_id=user_id)
        except Http404:
            if suppression_exists(app=app, kind="user_id", value=user_id):
                return Response(
                    {"erased": True, "profile_id": None, "already_erased": True, "counts": {}}
                )
            raise
        return _erased(profile, request)


class ProfileByPublicIdView(ServerView):
    def profile(self, request: Request, public_id: str) -> Profile:
        return profile_get_by_public_id(app=self.app_key(request).app, public_id=public_id)

    @extend_schema(responses={200: ProfileOutSerializer}, summary="Get a profile by its public id")
    def get(self, request: Request, public_id: str) -> Response:
        return Response(_out(self.profile(request, public_id)))

    @extend_schema(
        **WRITE_SCHEMA,
        summary="Replace an existing profile's attributes by public id",
        description="Like PUT by user id, for a profile that exists (guests included).",
    )
    def put(self, request: Request, public_id: str) -> Response:
        profile = self.profile(request, public_id)
        ops = _write_ops(request)
        return Response(
            _write_out(profile_attributes_update(profile=profile, ops=ops, replace=True))
        )

    @extend_schema(
        **WRITE_SCHEMA,
        summary="Update an existing profile's attributes by public id",
        description="Like PATCH by user id, for a profile that exists (guests included).",
    )
    def patch(self, request: Request, public_id: str) -> Response:
        profile = self.profile(request, public_id)
        ops = _write_ops(request)
        return Response(_write_out(profile_attributes_update(profile=profile, ops=ops)))

    @extend_schema(request=None, responses=ERASE_RESPONSES, summary="Erase a person by public id")
    def delete(self, request: Request, public_id: str) -> Response:
        return _erased(self.profile(request, public_id), request)


EVENT_PARAMETERS = [
    OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
    OpenApiParameter(
        "limit", int, description=f"events per page (1-{MAX_EVENTS_PAGE}, default 50)"
    ),
    OpenApiParameter("name", str, description="only events with this name"),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="from this time (inclusive)"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="until this time (exclusive)"),
]


def _time_param(request: Request, name: str) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    parsed = parse_datetime(raw)
    if parsed is None:
        raise ApplicationError(
            f"{name} must be an ISO 8601 date or date-time.", code="invalid_timestamp"
        )
    return parsed


def _events(request: Request, profile: Profile) -> Response:
    raw_limit = request.query_params.get("limit", "50")
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ApplicationError("limit must be a number.", code="invalid_limit") from None
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise ApplicationError(
            f"limit must be between 1 and {MAX_EVENTS_PAGE}.",
            code="invalid_limit",
            details={"max": MAX_EVENTS_PAGE},
        )
    name = request.query_params.get("name") or None
    if name is not None and (len(name) > 255 or "\x00" in name):
        raise ApplicationError(
            "name is at most 255 characters, without NUL characters.", code="invalid_name"
        )
    page = profile_events_page(
        profile=profile,
        cursor=request.query_params.get("cursor") or None,
        limit=limit,
        name=name,
        start=_time_param(request, "start"),
        end=_time_param(request, "end"),
    )
    return Response(
        {
            "events": [event_json(event, page.device_ids) for event in page.events],
            "next_cursor": page.next_cursor,
        }
    )


class ProfileEventsByUserIdView(ServerView):
    @extend_schema(
        parameters=EVENT_PARAMETERS,
        responses={200: EventsPageSerializer},
        summary="A profile's events by user id (newest first)",
    )
    def get(self, request: Request, user_id: str) -> Response:
        return _events(
            request, profile_get_by_user_id(app=self.app_key(request).app, user_id=user_id)
        )


class ProfileEventsByPublicIdView(ServerView):
    @extend_schema(
        parameters=EVENT_PARAMETERS,
        responses={200: EventsPageSerializer},
        summary="A profile's events by public id (newest first)",
    )
    def get(self, request: Request, public_id: str) -> Response:
        return _events(
            request,
            profile_get_by_public_id(app=self.app_key(request).app, public_id=public_id),
        )


def _export(profile: Profile) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        profile_export_stream(profile=profile), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="profile-{profile.public_id}.json"'
    return response


EXPORT_DESCRIPTION = (
    "Everything PushApp holds on the person, as one JSON document: the profile, attributes "
    "and their set times, merged profiles, aliases, devices, device bindings, sessions, "
    "daily activity, merges with their snapshots, quarantined values, and every event "
    "(streamed, newest first)."
)


class ProfileExportByUserIdView(ServerView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Export everything on a person by user id",
        description=EXPORT_DESCRIPTION,
    )
    def get(self, request: Request, user_id: str) -> StreamingHttpResponse:
        return _export(profile_get_by_user_id(app=self.app_key(request).app, user_id=user_id))


class ProfileExportByPublicIdView(ServerView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Export everything on a person by public id",
        description=EXPORT_DESCRIPTION,
    )
    def get(self, request: Request, public_id: str) -> StreamingHttpResponse:
        return _export(profile_get_by_public_id(app=self.app_key(request).app, public_id=public_id))
