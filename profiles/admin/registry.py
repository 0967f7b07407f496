"""Admins of apps, devices, fields, merges, jobs and the other identity tables."""

from __future__ import annotations

from typing import Any

import orjson
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from profiles.admin.scoping import AppScopedAdmin, PiiMaskedJsonMixin, ReadOnlyScopedAdmin
from profiles.attributes import MAX_KEY_LENGTH
from profiles.models import (
    App,
    AppMembership,
    BackgroundJob,
    Device,
    DeviceBinding,
    DiscoveredField,
    ProfileAlias,
    ProfileErasure,
    ProfileField,
    ProfileMerge,
    QuarantinedAttribute,
    StaffAction,
    Suppression,
    suppression_hash,
)
from profiles.selectors import (
    mask_value,
    pii_keys,
)
from profiles.services import (
    app_create,
    app_rotate_keys,
    discovered_field_promote,
    profile_field_delete,
    profile_field_save,
    staff_action_record,
    suppressions_lift,
)
from profiles.staff import can, can_see_pii


class AppMembershipInline(admin.TabularInline):
    model = AppMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(App)
class AppAdmin(AppScopedAdmin):
    app_field = "pk"

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

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_superuser)  # new workspaces are created by superusers

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return can(request, "manage")

    @admin.action(
        description="Rotate the write and server keys of the selected apps",
        permissions=["rotate"],
    )
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[App]) -> None:
        for app in queryset:
            if not can(request, "manage", app.pk):
                staff_action_record(
                    request=request,
                    action="rotate_keys",
                    objects=[app],
                    result="refused",
                    message="Only an app admin rotates keys.",
                )
                messages.error(request, f"{app.name}: only an admin of this app rotates its keys.")
                continue
            keys = app_rotate_keys(app=app)
            staff_action_record(request=request, action="rotate_keys", objects=[app], result="ok")
            messages.warning(
                request,
                f"{app.name}: new write key {keys.write_key} — new server key {keys.server_key} "
                "(shown once).",
            )


@admin.register(Device)
class DeviceAdmin(ReadOnlyScopedAdmin):
    list_display = ["device_id", "platform", "model", "app_version", "profile", "last_seen_at"]
    list_filter = ["platform", "app"]
    search_fields = ["=device_id", "=push_token"]
    raw_id_fields = ["profile"]
    show_full_result_count = False


@admin.register(DeviceBinding)
class DeviceBindingAdmin(ReadOnlyScopedAdmin):
    list_display = ["device", "profile", "bound_at", "reason"]
    raw_id_fields = ["device", "profile"]
    show_full_result_count = False


class ProfileFieldForm(forms.ModelForm):
    class Meta:
        model = ProfileField
        fields = [
            "app",
            "key",
            "label",
            "field_type",
            "pii",
            "set_once",
            "searchable",
            "description",
            "display_order",
        ]

    def clean_key(self) -> str:
        key = (self.cleaned_data.get("key") or "").strip()
        if not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
            raise ValidationError(f"A key is 1 to {MAX_KEY_LENGTH} characters.")
        return key


@admin.register(ProfileField)
class ProfileFieldAdmin(AppScopedAdmin):
    delete_action = "manage"

    """An app's configured fields: list, add, change, reorder (display order, editable in the
    list). Saving a number, date or date-time field builds its filter index after commit."""

    form = ProfileFieldForm
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
    search_fields = ["key", "label"]
    ordering = ["app", "display_order", "key"]

    def save_model(self, request: HttpRequest, obj: ProfileField, form: Any, change: bool) -> None:
        profile_field_save(profile_field=obj)

    def delete_model(self, request: HttpRequest, obj: ProfileField) -> None:
        profile_field_delete(profile_field=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProfileField]) -> None:
        for profile_field in queryset:
            profile_field_delete(profile_field=profile_field)


class PromoteForm(forms.Form):
    field_type = forms.ChoiceField(choices=ProfileField.Type.choices)
    label = forms.CharField(max_length=200, required=False)
    pii = forms.BooleanField(required=False, label="PII")
    set_once = forms.BooleanField(required=False)


@admin.register(DiscoveredField)
class DiscoveredFieldAdmin(ReadOnlyScopedAdmin):
    """Keys the apps send that are not configured fields; promote them to configured ones."""

    list_display = ["key", "app", "sample_type", "seen_count", "first_seen_at", "last_seen_at"]
    list_filter = ["app", "sample_type"]
    search_fields = ["key"]
    readonly_fields = ["app", "key", "sample_type", "seen_count", "first_seen_at", "last_seen_at"]
    actions = ["promote"]
    show_full_result_count = False

    def has_promote_permission(self, request: HttpRequest) -> bool:
        return can(request, "manage")

    @admin.action(description="Promote to configured fields…", permissions=["promote"])
    def promote(self, request: HttpRequest, queryset: QuerySet[DiscoveredField]) -> Any:
        """A page to choose each field's type (inferred from its sample), label and flags;
        submitting it creates the configured fields."""
        discovered = list(queryset.select_related("app").order_by("app_id", "key"))
        forms_by_id = {
            item.pk: PromoteForm(
                request.POST if "confirm" in request.POST else None,
                prefix=f"f{item.pk}",
                initial={
                    "field_type": _inferred_type(item.sample_type),
                    "label": item.key.replace("_", " ").strip().capitalize()[:200],
                },
            )
            for item in discovered
        }
        if "confirm" in request.POST and all(form.is_valid() for form in forms_by_id.values()):
            for item in discovered:
                data = forms_by_id[item.pk].cleaned_data
                discovered_field_promote(
                    discovered=item,
                    field_type=data["field_type"],
                    label=data["label"] or None,
                    pii=data["pii"],
                    set_once=data["set_once"],
                )
            messages.success(request, f"Promoted {len(discovered)} field(s).")
            return None
        return TemplateResponse(
            request,
            "admin/profiles/discoveredfield/promote.html",
            {
                **self.admin_site.each_context(request),
                "title": "Promote discovered fields",
                "opts": self.model._meta,
                "rows": [(item, forms_by_id[item.pk]) for item in discovered],
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )


def _inferred_type(sample_type: str) -> str:
    from profiles.services import INFERRED_TYPES

    return str(INFERRED_TYPES.get(sample_type, ProfileField.Type.STRING))


@admin.register(QuarantinedAttribute)
class QuarantinedAttributeAdmin(ReadOnlyScopedAdmin):
    """Refused attribute values, kept so nothing is dropped silently. PII values masked for
    staff without profiles.view_pii."""

    list_filter = ["app", "code", "source"]
    search_fields = ["=key"]
    raw_id_fields = ["profile"]
    show_full_result_count = False

    def get_list_display(self, request: HttpRequest) -> Any:
        return [
            "key",
            quarantined_value_column(request),
            "code",
            "error",
            "source",
            "profile",
            "received_at",
        ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            "app",
            "profile",
            "key",
            "operation",
            quarantined_value_column(request),
            "code",
            "error",
            "source",
            "received_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # Every field is read-only: the form has none (the value column is request-bound).
        return super().get_form(request, obj, change, **{**kwargs, "fields": []})


def quarantined_value_column(request: HttpRequest) -> Any:
    clear = can_see_pii(request)
    pii_by_app: dict[int, frozenset[str]] = {}

    def value(row: QuarantinedAttribute) -> str:
        if not clear:
            if row.app_id not in pii_by_app:
                pii_by_app[row.app_id] = pii_keys(app=row.app_id)
            if row.key in pii_by_app[row.app_id]:
                return mask_value(row.value)
        return orjson.dumps(row.value, default=str).decode()[:500]

    value.short_description = "Value"  # type: ignore[attr-defined]
    return value


class SuppressionAdmin(ReadOnlyScopedAdmin):
    """Erased people's ids (hashed). Search with the exact id; lift to let data in again."""

    list_display = ["kind", "value_hash", "app", "erasure", "created_at"]
    list_filter = ["app", "kind"]
    search_fields = ["=value_hash"]
    search_help_text = "The exact user id, alias or device id (it is matched by its hash)."
    actions = ["lift"]
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(value_hash__in=[suppression_hash(term), term]), False

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return can(request, "manage")

    @admin.action(description="Lift the selected suppressions…", permissions=["lift"])
    def lift(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> Any:
        if "confirm" in request.POST:
            lifted = suppressions_lift(suppression_ids=list(queryset.values_list("pk", flat=True)))
            messages.success(
                request, f"Lifted {lifted} suppression(s): data naming these ids is accepted again."
            )
            return None
        return TemplateResponse(
            request,
            "admin/profiles/suppression/lift.html",
            {
                **self.admin_site.each_context(request),
                "title": "Lift suppressions",
                "opts": self.model._meta,
                "suppressions": list(queryset.select_related("app")),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )


admin.site.register(Suppression, SuppressionAdmin)


@admin.register(ProfileErasure)
class ProfileErasureAdmin(ReadOnlyScopedAdmin):
    list_display = ["public_id", "app", "via", "requested_by", "created_at"]
    list_filter = ["app", "via"]
    search_fields = ["=public_id"]
    readonly_fields = ["app", "public_id", "via", "requested_by", "counts", "created_at"]


@admin.register(ProfileAlias)
class ProfileAliasAdmin(ReadOnlyScopedAdmin):
    list_display = ["alias", "profile", "created_at"]
    search_fields = ["=alias"]
    raw_id_fields = ["profile"]


@admin.register(ProfileMerge)
class ProfileMergeAdmin(PiiMaskedJsonMixin, ReadOnlyScopedAdmin):
    list_display = ["pk", "source", "target", "reason", "status", "created_at", "finished_at"]
    list_filter = ["status", "reason"]
    raw_id_fields = ["source", "target", "requested_by"]
    show_full_result_count = False
    masked_json_fields = ("source_snapshot", "target_prior")

    @admin.display(description="source snapshot (PII masked)")
    def masked_source_snapshot(self, merge: ProfileMerge) -> Any:
        return self.masked(merge, "source_snapshot")

    @admin.display(description="target prior values (PII masked)")
    def masked_target_prior(self, merge: ProfileMerge) -> Any:
        return self.masked(merge, "target_prior")


@admin.register(BackgroundJob)
class BackgroundJobAdmin(ReadOnlyScopedAdmin):
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
    change_form_template = "admin/profiles/backgroundjob/change_form.html"


@admin.register(AppMembership)
class AppMembershipAdmin(AppScopedAdmin):
    list_display = ["user", "app", "role", "created_at"]
    list_filter = ["role", "app"]
    autocomplete_fields = ["user"]
    delete_action = "manage"


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyScopedAdmin):
    """The audit log: readable by app admins (their apps) and superusers; nobody edits it."""

    list_display = ["created_at", "username", "action", "object_repr", "result", "app"]
    list_filter = ["action", "result", "app"]
    search_fields = ["=username", "object_repr"]
    readonly_fields = [field.name for field in StaffAction._meta.fields]
    show_full_result_count = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._app_allows(request, "manage", obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request, "manage")
