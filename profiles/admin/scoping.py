"""Every admin page is scoped to the staff member's apps (profiles/staff.py): querysets are
filtered, an object of another app is a 404 (not merely a hidden link), and what a page lets
one do follows the role in that object's app. Superusers see everything."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from profiles.staff import can, can_see_pii, staff_roles, visible_app_ids


def _app_id_of(obj: Any, app_field: str) -> int | None:
    if app_field == "pk":
        return obj.pk
    return getattr(obj, f"{app_field}_id", None)


class AppScopedAdmin(admin.ModelAdmin):
    """Scoping by ``app_field`` (the model's foreign key to App, or "pk" for App itself).
    ``view_role``/``change_role`` name the staff action needed to view and to change."""

    app_field = "app"
    change_action = "manage"
    add_action: str | None = "manage"
    delete_action: str | None = None  # deletions go through services (erasure), not here

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        app_ids = visible_app_ids(request)
        if app_ids is None:
            return queryset
        lookup = "pk__in" if self.app_field == "pk" else f"{self.app_field}_id__in"
        return queryset.filter(**{lookup: app_ids})

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Another app's object, or none at all: the same 404 either way.
            raise Http404("No such object.")
        return obj

    def _app_allows(self, request: HttpRequest, action: Any, obj: Model | None) -> bool:
        app_id = _app_id_of(obj, self.app_field) if obj is not None else None
        return can(request, action, app_id)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(staff_roles(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._app_allows(request, "view", obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._app_allows(request, self.change_action, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self.add_action is not None and self._app_allows(request, self.add_action, None)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.delete_action is not None and self._app_allows(request, self.delete_action, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Pickers offer only the staff member's apps."""
        from profiles.models import App

        app_ids = visible_app_ids(request)
        if db_field.remote_field.model is App and app_ids is not None:
            kwargs["queryset"] = App.objects.filter(pk__in=app_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ReadOnlyScopedAdmin(AppScopedAdmin):
    """Rows that change only through services: viewable, never edited here."""

    add_action = None

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class PiiMaskedJsonMixin:
    """Detail pages of rows that carry attribute values in JSON (event traits, merge
    snapshots): for staff without ``profiles.view_pii`` the raw JSON fields are replaced by a
    masked rendering (``masked_json_fields``: field name -> how to mask it)."""

    masked_json_fields: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        if can_see_pii(request):
            return fields
        return [f"masked_{name}" if name in self.masked_json_fields else name for name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if can_see_pii(request):
            return fields
        return [*fields, *(f"masked_{name}" for name in self.masked_json_fields)]

    def masked(self, obj: Any, name: str) -> str:
        from profiles.selectors import mask_event_properties, pii_keys

        keys = pii_keys(app=obj.app_id)
        value = getattr(obj, name)
        if isinstance(value, dict) and isinstance(value.get("attributes"), dict):
            value = {**value, "attributes": mask_event_properties(value["attributes"], keys)}
        elif isinstance(value, dict):
            value = mask_event_properties(value, keys)
            if isinstance(value.get("traits"), dict):
                value["traits"] = mask_event_properties(value["traits"], keys)
        return json.dumps(value, indent=1, sort_keys=True, default=str)[:20000]
