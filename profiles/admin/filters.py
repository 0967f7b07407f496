"""List filters and the paginator of the profile list: every filter is an indexed predicate
or an EXISTS on devices, and no page counts a big table in full."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest

from profiles.models import App, Device, Profile
from profiles.staff import visible_app_ids

COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (an index-bounded subquery); past that, an unfiltered
    list uses PostgreSQL's estimate of the table size (``pg_class.reltuples``), so the list page
    never runs ``COUNT(*)`` over millions of profiles."""

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        queryset: Any = self.object_list
        capped = queryset.order_by().values("pk")[: COUNT_CAP + 1].count()
        if capped <= COUNT_CAP:
            return capped
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] and row[0] > capped:
                return int(row[0])
        return capped


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("guest", "Guest"), ("identified", "Identified"), ("merged", "Merged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        value = self.value()
        if value == "merged":
            return queryset.filter(merged_into__isnull=False)
        if value in ("guest", "identified"):
            return queryset.filter(kind=value, merged_into__isnull=True)
        return queryset


class PlatformFilter(admin.SimpleListFilter):
    title = "platform"
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("ios", "iOS"), ("android", "Android"), ("web", "Web")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        if not self.value():
            return queryset
        devices = Device.objects.filter(profile=OuterRef("pk"), platform__iexact=self.value())
        return queryset.filter(Exists(devices))


class PushOptInFilter(admin.SimpleListFilter):
    title = "push"
    parameter_name = "push"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Opted in (has a token)"), ("no", "Not reachable by push")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        reachable = Exists(
            Device.objects.filter(profile=OuterRef("pk"), push_token__isnull=False).exclude(
                push_opt_in=False
            )
        )
        if self.value() == "yes":
            return queryset.filter(reachable)
        if self.value() == "no":
            return queryset.exclude(reachable)
        return queryset


class AppFilter(admin.SimpleListFilter):
    """Only the staff member's apps are offered."""

    title = "app"
    parameter_name = "app"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        apps = App.objects.order_by("name")
        app_ids = visible_app_ids(request)
        if app_ids is not None:
            apps = apps.filter(pk__in=app_ids)
        return [(str(app.pk), app.name) for app in apps]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(app_id=int(value))
        return queryset
