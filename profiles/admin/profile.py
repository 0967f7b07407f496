"""The customer profile in the admin: the list, the profile page and the staff actions."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import path

from profiles.attributes import RESERVED_TRAITS
from profiles.models import (
    Device,
    Profile,
    ProfileField,
    ProfileMerge,
)
from profiles.selectors import (
    mask_value,
    pii_keys,
    profile_attributes_for_display,
    profile_export_stream,
    profile_live,
)
from profiles.staff import can_see_pii


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    """The profile change page is the customer profile: identity, fields, devices, the
    activity timeline and chart, merge history (templates/admin/profiles/profile/)."""

    list_display = ["__str__", "kind", "app", "last_seen_at", "event_count"]
    list_filter = ["kind", "app"]
    search_fields = ["=user_id", "=public_id"]
    raw_id_fields = ["merged_into"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    show_full_result_count = False
    change_form_template = "admin/profiles/profile/change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        profile = self.get_object(request, object_id)
        if profile is not None:
            extra_context = {
                **(extra_context or {}),
                **profile_page_context(profile=profile, older=request.GET.get("older")),
            }
            mask_profile_page(extra_context, profile=profile, can_see_pii=can_see_pii(request))
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The page is read-only: profiles change through ingestion and the staff services.
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # -- PII: masked for staff without profiles.view_pii (list, search, export) ------------------

    actions = ["export_json"]

    def get_list_display(self, request: HttpRequest) -> Any:
        return [*super().get_list_display(request), contact_column(request)]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Profile], search_term: str
    ) -> tuple[QuerySet[Profile], bool]:
        """Also find profiles by an exact searchable field value (email, phone: the GIN index
        serves it); PII fields only for staff who may see PII."""
        try:
            results, duplicates = super().get_search_results(request, queryset, search_term)
        except ValidationError:  # "=public_id" with a term that is not a UUID
            results, duplicates = queryset.none(), False
        term = search_term.strip()
        if not term:
            return results, duplicates
        searchable = ProfileField.objects.filter(searchable=True)
        if not can_see_pii(request):
            searchable = searchable.filter(pii=False)
        keys = sorted(set(searchable.values_list("key", flat=True)))
        if keys:
            matches = Q()
            for key in keys:
                matches |= Q(attributes__contains={key: term})
            results = results | queryset.filter(matches)
        return results, duplicates

    def get_urls(self) -> list[Any]:
        export = path(
            "<path:object_id>/export/",
            self.admin_site.admin_view(self.export_view),
            name="profiles_profile_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        profile = self.get_object(request, object_id)
        if profile is None or not self.has_view_permission(request, profile):
            raise Http404("No such profile.")
        return export_response(profile, can_see_pii=can_see_pii(request))

    @admin.action(description="Export the selected profile as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Profile]) -> Any:
        profiles = list(queryset[:2])
        if len(profiles) != 1:
            messages.error(request, "Select exactly one profile to export.")
            return None
        return export_response(profiles[0], can_see_pii=can_see_pii(request))


def contact_column(request: HttpRequest) -> Any:
    """The changelist's "Email" column, masked where the app's email field is PII and the
    staff member may not see PII (the PII keys are read once per app per page)."""
    clear = can_see_pii(request)
    pii_by_app: dict[int, frozenset[str]] = {}

    def email(profile: Profile) -> str:
        value = (profile.attributes or {}).get("email")
        if value is None:
            return ""
        if not clear:
            if profile.app_id not in pii_by_app:
                pii_by_app[profile.app_id] = pii_keys(app=profile.app_id)
            if "email" in pii_by_app[profile.app_id]:
                return mask_value(value)
        return str(value)

    email.short_description = "Email"  # type: ignore[attr-defined]
    return email


def mask_profile_page(context: dict[str, Any], *, profile: Profile, can_see_pii: bool) -> None:
    """PII on the customer profile page: the fields (profiles.selectors) and the traits shown
    on identify events of the timeline, masked for staff without profiles.view_pii."""
    configured, custom = profile_attributes_for_display(profile=profile, can_see_pii=can_see_pii)
    context["configured_fields"] = [(field.label, value) for field, value in configured]
    context["custom_attributes"] = custom
    if can_see_pii:
        return
    masked = pii_keys(app=profile.app_id)
    timeline = context.get("timeline")
    for item in getattr(timeline, "items", []):
        events = item.events if item.session is not None else [item.event]
        for event in events:
            if event is None:
                continue
            event.key_properties = [  # type: ignore[attr-defined]
                (
                    key,
                    mask_value(value)
                    if key in masked or RESERVED_TRAITS.get(key) in masked
                    else value,
                )
                for key, value in getattr(event, "key_properties", [])
            ]


def export_response(profile: Profile, *, can_see_pii: bool) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        profile_export_stream(profile=profile_live(profile), can_see_pii=can_see_pii),
        content_type="application/json",
    )
    response["Content-Disposition"] = f'attachment; filename="profile-{profile.public_id}.json"'
    return response


def profile_page_context(*, profile: Profile, older: str | None) -> dict[str, Any]:
    """What the customer profile page shows, in a constant number of queries."""
    from events.models import Event
    from pushapp.api import ApplicationError
    from sessions_timeline.selectors import daily_activity, timeline_page

    fields = list(
        ProfileField.objects.filter(app_id=profile.app_id).order_by("display_order", "key")
    )
    configured_keys = {field.key for field in fields}
    configured = [(field.label, _display(profile.attributes.get(field.key))) for field in fields]
    custom = [
        (key, _display(value))
        for key, value in sorted(profile.attributes.items())
        if key not in configured_keys
    ]
    try:
        timeline = timeline_page(profile=profile, cursor=older, limit=20)
    except ApplicationError:
        timeline = timeline_page(profile=profile, limit=20)
        older = None
    for item in timeline.items:
        events: list[Event] = item.events if item.session is not None else [item.event]  # type: ignore[list-item]
        for event in events:
            event.key_properties = _key_properties(event.properties)  # type: ignore[attr-defined]
        if item.session is not None:
            item.duration = _duration(item.session.duration_seconds)  # type: ignore[attr-defined]
    merges = list(
        ProfileMerge.objects.filter(Q(source=profile) | Q(target=profile))
        .select_related("source", "target")
        .order_by("-created_at")[:50]
    )
    return {
        "devices": list(Device.objects.filter(profile=profile).order_by("-last_seen_at")),
        "configured_fields": configured,
        "custom_attributes": custom,
        "timeline": timeline,
        "timeline_cursor": older,
        "chart": _chart(daily_activity(profile=profile, days=90)),
        "merges": merges,
        "merged_into": Profile.objects.filter(pk=profile.merged_into_id).first()
        if profile.merged_into_id
        else None,
    }


def _display(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)[:500]
    return str(value)[:500]


def _key_properties(properties: dict[str, Any], limit: int = 3) -> list[tuple[str, str]]:
    scalars = [
        (key, str(value)[:40])
        for key, value in properties.items()
        if isinstance(value, str | int | float | bool)
    ]
    return scalars[:limit]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def _chart(days: list[tuple[Any, int]]) -> dict[str, Any]:
    """Bars of a server-rendered SVG (no chart library, nothing from a CDN)."""
    width, height, gap = 720, 120, 1
    bar_width = width / max(len(days), 1) - gap
    peak = max((count for _, count in days), default=0)
    bars = []
    for index, (day, count) in enumerate(days):
        bar_height = 0 if peak == 0 else max(1 if count else 0, round(count / peak * (height - 4)))
        bars.append(
            {
                "x": round(index * (bar_width + gap), 2),
                "y": height - bar_height,
                "height": bar_height,
                "day": day,
                "count": count,
            }
        )
    return {
        "width": width,
        "height": height,
        "bar_width": round(bar_width, 2),
        "bars": bars,
        "max": peak,
        "total": sum(count for _, count in days),
        "first_day": days[0][0] if days else None,
        "last_day": days[-1][0] if days else None,
    }
