"""Admin for tenancy and identity. The customer-profile page is its own piece of work
(templates/admin/profiles/profile/); here: apps with key rotation and members, and plain
registrations of the other models."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

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
    list_display = ["__str__", "kind", "app", "last_seen_at", "event_count"]
    list_filter = ["kind", "app"]
    search_fields = ["=user_id", "=public_id"]
    raw_id_fields = ["merged_into"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    show_full_result_count = False


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
