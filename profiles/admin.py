"""Admin for tenancy and identity. The customer-profile page is its own piece of work
(templates/admin/profiles/profile/); here: apps with key rotation and members, and plain
registrations of the other models."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse

from profiles.models import (
    App,
    AppMembership,
    BackgroundJob,
    Device,
    DeviceBinding,
    Profile,
    ProfileAlias,
    ProfileField,
    ProfileMerge,
)
from profiles.services import app_create, app_rotate_keys


class AppMembershipInline(admin.TabularInline):
    model = AppMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "write_key",
        "server_key_prefix",
        "session_timeout_seconds",
        "created_at",
    ]
    search_fields = ["name"]
    readonly_fields = ["write_key", "server_key_prefix", "keys_rotated_at", "created_at"]
    fields = ["name", "session_timeout_seconds", *readonly_fields]
    inlines = [AppMembershipInline]
    actions = ["rotate_keys"]

    def save_model(self, request: HttpRequest, obj: App, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        app, keys = app_create(name=obj.name, session_timeout_seconds=obj.session_timeout_seconds)
        obj.pk = app.pk
        obj.refresh_from_db()
        messages.warning(
            request,
            f"App {app.name!r} created. Write key: {keys.write_key} — server key: {keys.server_key} "
            "(shown once: copy it now, it is stored hashed).",
        )

    @admin.action(description="Rotate the write and server keys of the selected apps")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            keys = app_rotate_keys(app=app)
            messages.warning(
                request,
                f"{app.name}: new write key {keys.write_key} — new server key {keys.server_key} "
                "(shown once).",
            )


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
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The page is read-only: profiles change through ingestion and the staff services.
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


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


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["device_id", "platform", "model", "app_version", "profile", "last_seen_at"]
    list_filter = ["platform", "app"]
    search_fields = ["=device_id", "=push_token"]
    raw_id_fields = ["profile"]
    show_full_result_count = False


@admin.register(DeviceBinding)
class DeviceBindingAdmin(admin.ModelAdmin):
    list_display = ["device", "profile", "bound_at", "reason"]
    raw_id_fields = ["device", "profile"]
    show_full_result_count = False


@admin.register(ProfileField)
class ProfileFieldAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "label",
        "field_type",
        "pii",
        "set_once",
        "searchable",
        "display_order",
        "app",
    ]
    list_filter = ["app", "field_type", "pii"]
    list_editable = ["display_order"]


@admin.register(ProfileAlias)
class ProfileAliasAdmin(admin.ModelAdmin):
    list_display = ["alias", "profile", "created_at"]
    search_fields = ["=alias"]
    raw_id_fields = ["profile"]


@admin.register(ProfileMerge)
class ProfileMergeAdmin(admin.ModelAdmin):
    list_display = ["pk", "source", "target", "reason", "status", "created_at", "finished_at"]
    list_filter = ["status", "reason"]
    raw_id_fields = ["source", "target", "requested_by"]
    show_full_result_count = False


@admin.register(BackgroundJob)
class BackgroundJobAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "kind",
        "app",
        "status",
        "progress_done",
        "progress_total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [field.name for field in BackgroundJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(AppMembership)
