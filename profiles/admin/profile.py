"""The customer profile in the admin: the list, the profile page and the staff actions."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path, reverse

from profiles.admin.filters import (
    AppFilter,
    EstimatedCountPaginator,
    KindFilter,
    PlatformFilter,
    PushOptInFilter,
)
from profiles.admin.scoping import ReadOnlyScopedAdmin
from profiles.attributes import RESERVED_TRAITS, AttributeOp
from profiles.identity import (
    IdentityError,
    merge_preview,
    merge_request,
    merge_undo,
    merge_undo_problem,
    resync_job_create,
)
from profiles.models import (
    App,
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
from profiles.services import profile_attributes_update, profile_erase, staff_action_record
from profiles.staff import can, can_see_pii, visible_app_ids


@admin.register(Profile)
class ProfileAdmin(ReadOnlyScopedAdmin):
    """The list finds any profile fast; the change page is the customer profile (identity,
    fields, devices, timeline and chart, merge history); the actions (merge, undo, re-sync,
    export, erase) each confirm first and then call the identity and profile services."""

    list_display = ["identity", "kind_label", "devices", "last_seen_at", "event_count", "app"]
    list_display_links = ["identity"]
    list_filter = [
        KindFilter,
        PlatformFilter,
        ("last_seen_at", admin.DateFieldListFilter),
        PushOptInFilter,
        AppFilter,
    ]
    list_select_related = ["app"]
    search_fields = ["=user_id"]
    search_help_text = "Exact user id, profile id, device id, push token, or email/phone."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    ordering = ["-last_seen_at", "-pk"]
    change_form_template = "admin/profiles/profile/change_form.html"
    actions = ["merge_selected", "resync_selected", "export_json", "erase_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Profile]:
        devices = (
            Device.objects.filter(profile=OuterRef("pk"))
            .order_by()
            .values("profile")
            .annotate(n=Count("pk"))
            .values("n")
        )
        # A correlated subquery: evaluated for the page's rows only, never a GROUP BY of all.
        return super().get_queryset(request).annotate(device_count=Subquery(devices))

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        columns.insert(2, contact_column(request))
        return columns

    @admin.display(description="User id", ordering="user_id")
    def identity(self, profile: Profile) -> str:
        return profile.user_id or "Guest"

    @admin.display(description="Kind")
    def kind_label(self, profile: Profile) -> str:
        return "Merged" if profile.merged_into_id else profile.get_kind_display()

    @admin.display(description="Devices")
    def devices(self, profile: Profile) -> int:
        return getattr(profile, "device_count", None) or 0

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Profile], search_term: str
    ) -> tuple[QuerySet[Profile], bool]:
        """Exact matches only, each served by an index: user id (app, user_id), public id,
        device id and push token (through the device's unique indexes), and searchable fields
        (email, phone: the GIN index on attributes); PII fields only for staff who may see
        PII. Every branch is bounded by the staff member's apps, so the composite indexes are
        used with their leading column."""
        term = search_term.strip()
        if not term:
            return queryset, False
        app_ids = visible_app_ids(request)
        if app_ids is None:
            app_ids = list(App.objects.values_list("pk", flat=True))
        devices = Device.objects.filter(app_id__in=app_ids).filter(
            Q(device_id=term) | Q(push_token=term)
        )
        matches = Q(app_id__in=app_ids, user_id=term) | Q(pk__in=devices.values("profile_id"))
        with contextlib.suppress(ValueError):
            matches |= Q(public_id=uuid.UUID(term))
        searchable = ProfileField.objects.filter(app_id__in=app_ids, searchable=True)
        if not can_see_pii(request):
            searchable = searchable.filter(pii=False)
        for key in sorted(set(searchable.values_list("key", flat=True))):
            matches |= Q(attributes__contains={key: term})
        return queryset.filter(matches), False

    # -- the customer profile page ---------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        profile = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            **profile_page_context(profile=profile, older=request.GET.get("older")),
            "can": {
                action: can(request, action, profile.app_id)
                for action in ("export", "edit", "resync", "merge", "undo", "erase")
            },
        }
        mask_profile_page(extra_context, profile=profile, can_see_pii=can_see_pii(request))
        undoable = next((m for m in extra_context["merges"] if merge_undo_problem(m) is None), None)
        extra_context["undoable_merge"] = undoable
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[Any]:
        def view(function: Any, route: str, name: str) -> Any:
            return path(
                route, self.admin_site.admin_view(function), name=f"profiles_profile_{name}"
            )

        return [
            view(self.merge_view, "merge/", "merge"),
            view(self.export_view, "<path:object_id>/export/", "export"),
            view(self.resync_view, "<path:object_id>/resync/", "resync"),
            view(self.erase_view, "<path:object_id>/erase/", "erase"),
            view(self.attributes_view, "<path:object_id>/attributes/", "attributes"),
            view(self.undo_view, "<path:object_id>/undo-merge/<int:merge_id>/", "undo"),
            *super().get_urls(),
        ]

    def _profile_for(self, request: HttpRequest, object_id: str, action: Any) -> Profile:
        """The profile, if this staff member may do ``action`` on it; another app's is a 404."""
        profile = self.get_object(request, object_id)
        if not can(request, action, profile.app_id):
            raise PermissionDenied(f"Your role in {profile.app} does not allow this.")
        return profile

    def _page(
        self, request: HttpRequest, template: str, context: dict[str, Any]
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/profiles/profile/{template}",
            {**self.admin_site.each_context(request), "opts": self.model._meta, **context},
        )

    def _to_profile(self, profile: Profile) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:profiles_profile_change", args=[profile.pk]))

    # -- merge -----------------------------------------------------------------------------------

    def has_merge_permission(self, request: HttpRequest) -> bool:
        return can(request, "merge")

    @admin.action(description="Merge the selected profiles…", permissions=["merge"])
    def merge_selected(self, request: HttpRequest, queryset: QuerySet[Profile]) -> Any:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True)[:20])
        return HttpResponseRedirect(f"{reverse('admin:profiles_profile_merge')}?ids={ids}")

    def merge_view(self, request: HttpRequest) -> HttpResponse:
        """Pick the target, see what moves, confirm. Two identified profiles need "force"."""
        raw_ids = request.POST.get("ids") or request.GET.get("ids", "")
        ids = [int(part) for part in raw_ids.split(",") if part.strip().isdigit()]
        profiles = list(self.get_queryset(request).filter(pk__in=ids).order_by("pk"))
        if len(profiles) < 2 or len(profiles) != len(set(ids)):
            raise Http404("Select at least two profiles of your apps.")
        if len({profile.app_id for profile in profiles}) != 1:
            messages.error(request, "Profiles of different apps cannot be merged.")
            return HttpResponseRedirect(reverse("admin:profiles_profile_changelist"))
        app_id = profiles[0].app_id
        if not can(request, "merge", app_id):
            raise PermissionDenied("Only an app admin merges profiles.")
        by_pk = {profile.pk: profile for profile in profiles}
        raw_target = request.POST.get("target") or request.GET.get("target")
        default = max(profiles, key=lambda p: (p.kind == Profile.Kind.IDENTIFIED, p.event_count))
        target = by_pk.get(int(raw_target)) if raw_target and raw_target.isdigit() else default
        if target is None:
            raise Http404("The target must be one of the selected profiles.")
        sources = [profile for profile in profiles if profile.pk != target.pk]
        previews, problems = [], []
        for source in sources:
            try:
                previews.append(merge_preview(source=source, target=target))
            except IdentityError as error:
                problems.append(f"{source}: {error.message}")
        needs_force = any(preview.needs_force for preview in previews)
        may_force = can(request, "force_merge", app_id)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            force = request.POST.get("force") == "on"
            if needs_force and not (force and may_force):
                messages.error(request, "Two identified profiles are only merged with force.")
            else:
                done = []
                for source in sources:
                    try:
                        with transaction.atomic():
                            merge = merge_request(
                                source=source, target=target, requested_by=request.user, force=force
                            )
                            staff_action_record(
                                request=request,
                                action="merge",
                                objects=[source, target],
                                result="ok",
                                details={"merge_id": merge.pk, "forced": merge.forced},
                            )
                        done.append(str(source))
                    except IdentityError as error:
                        staff_action_record(
                            request=request,
                            action="merge",
                            objects=[source, target],
                            result="refused",
                            message=error.message,
                        )
                        messages.error(request, f"{source}: {error.message}")
                if done:
                    messages.success(
                        request,
                        f"Merging {', '.join(done)} into {target}: the merge runs in the "
                        "background; its status shows in the merge history below.",
                    )
                return self._to_profile(target)
        return self._page(
            request,
            "merge_confirm.html",
            {
                "title": "Merge profiles",
                "profiles": profiles,
                "target": target,
                "previews": previews,
                "problems": problems,
                "needs_force": needs_force,
                "may_force": may_force,
                "ids": ",".join(str(profile.pk) for profile in profiles),
            },
        )

    def undo_view(self, request: HttpRequest, object_id: str, merge_id: int) -> HttpResponse:
        profile = self._profile_for(request, object_id, "undo")
        merge = (
            ProfileMerge.objects.filter(
                Q(source=profile) | Q(target=profile), pk=merge_id, app_id=profile.app_id
            )
            .select_related("source", "target")
            .first()
        )
        if merge is None:
            raise Http404("No such merge of this profile.")
        problem = merge_undo_problem(merge)
        if request.method == "POST" and request.POST.get("confirm") == "yes" and problem is None:
            try:
                with transaction.atomic():
                    merge_undo(merge_id=merge.pk, requested_by=request.user)
                    staff_action_record(
                        request=request,
                        action="undo_merge",
                        objects=[merge.source, merge.target],
                        result="ok",
                        details={"merge_id": merge.pk},
                    )
            except IdentityError as error:
                staff_action_record(
                    request=request,
                    action="undo_merge",
                    objects=[merge.source, merge.target],
                    result="refused",
                    message=error.message,
                )
                messages.error(request, error.message)
                return self._to_profile(profile)
            messages.success(
                request, f"The merge of {merge.source} into {merge.target} was undone."
            )
            return self._to_profile(merge.source)
        return self._page(
            request,
            "undo_confirm.html",
            {"title": "Undo a merge", "merge": merge, "problem": problem, "profile": profile},
        )

    # -- re-sync ---------------------------------------------------------------------------------

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return can(request, "resync")

    @admin.action(description="Re-sync the selected profiles…", permissions=["resync"])
    def resync_selected(self, request: HttpRequest, queryset: QuerySet[Profile]) -> Any:
        first = queryset.order_by("pk").first()
        if first is None:
            return None
        if queryset.count() > 1:
            messages.info(request, "Re-sync runs one profile at a time; starting with the first.")
        return HttpResponseRedirect(reverse("admin:profiles_profile_resync", args=[first.pk]))

    def resync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        profile = self._profile_for(request, object_id, "resync")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            with transaction.atomic():
                job = resync_job_create(app=profile.app, profile=profile, requested_by=request.user)
                staff_action_record(
                    request=request,
                    action="resync",
                    objects=[profile],
                    result="ok",
                    details={"job_id": job.pk},
                )
            messages.success(request, "Re-sync queued; this page shows its progress.")
            return HttpResponseRedirect(
                reverse("admin:profiles_backgroundjob_change", args=[job.pk])
            )
        return self._page(
            request, "resync_confirm.html", {"title": "Re-sync a profile", "profile": profile}
        )

    # -- export ------------------------------------------------------------------------------------

    def has_export_permission(self, request: HttpRequest) -> bool:
        return can(request, "export")

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        profile = self._profile_for(request, object_id, "export")
        staff_action_record(
            request=request,
            action="export",
            objects=[profile],
            result="ok",
            details={"pii": can_see_pii(request)},
        )
        return export_response(profile, can_see_pii=can_see_pii(request))

    @admin.action(description="Export the selected profile as JSON", permissions=["export"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Profile]) -> Any:
        profiles = list(queryset[:2])
        if len(profiles) != 1:
            messages.error(request, "Select exactly one profile to export.")
            return None
        return self.export_view(request, str(profiles[0].pk))

    # -- erase -------------------------------------------------------------------------------------

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return can(request, "erase")

    @admin.action(description="Erase the selected profile…", permissions=["erase"])
    def erase_selected(self, request: HttpRequest, queryset: QuerySet[Profile]) -> Any:
        profiles = list(queryset[:2])
        if len(profiles) != 1:
            messages.error(request, "Erase one profile at a time.")
            return None
        return HttpResponseRedirect(reverse("admin:profiles_profile_erase", args=[profiles[0].pk]))

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Erasure asks the staff member to type the person's user id (or, for a guest, the
        profile id) first: it cannot be undone."""
        profile = profile_live(self._profile_for(request, object_id, "erase"))
        expected = profile.user_id or str(profile.public_id)
        typed = request.POST.get("typed", "").strip()
        if request.method == "POST" and typed:
            if typed != expected:
                messages.error(request, "That is not this person's id; nothing was erased.")
            else:
                label = str(profile)
                with transaction.atomic():
                    staff_action_record(
                        request=request,
                        action="erase",
                        objects=[profile],
                        result="ok",
                        details={"public_id": str(profile.public_id)},
                    )
                    erasure = profile_erase(profile=profile, via="admin", requested_by=request.user)
                messages.success(request, f"{label} was erased ({erasure.counts}).")
                return HttpResponseRedirect(reverse("admin:profiles_profile_changelist"))
        return self._page(
            request,
            "erase_confirm.html",
            {
                "title": "Erase a person",
                "profile": profile,
                "expected_label": "user id" if profile.user_id else "profile id",
            },
        )

    # -- attributes (editors) ------------------------------------------------------------------------

    def attributes_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Editors set or unset attributes; values are validated like the API's."""
        profile = profile_live(self._profile_for(request, object_id, "edit"))
        if request.method == "POST":
            key = request.POST.get("key", "").strip()
            operation = request.POST.get("op", "set")
            raw_value = request.POST.get("value", "")
            try:
                value = json.loads(raw_value) if raw_value.strip() else None
            except ValueError:
                value = raw_value  # plain text is a string value
            if not key or operation not in ("set", "unset"):
                messages.error(request, "Give a key, and set or unset.")
            else:
                with transaction.atomic():
                    result = profile_attributes_update(
                        profile=profile,
                        ops=[AttributeOp(operation, key, value)],  # type: ignore[arg-type]
                    )
                    problems = [problem["message"] for problem in result.attribute_errors]
                    staff_action_record(
                        request=request,
                        action="edit_attributes",
                        objects=[profile],
                        result="refused" if problems else "ok",
                        message="; ".join(problems),
                        details={"key": key, "op": operation},
                    )
                if problems:
                    messages.error(request, "; ".join(problems))
                else:
                    messages.success(request, f"{operation} {key}: saved.")
                    return self._to_profile(profile)
        return self._page(
            request, "attributes_form.html", {"title": "Edit attributes", "profile": profile}
        )


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

    # The fields and attributes come from mask_profile_page (PII-aware), not from here.
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
        "timeline": timeline,
        "timeline_cursor": older,
        "chart": _chart(daily_activity(profile=profile, days=90)),
        "merges": merges,
        "merged_into": Profile.objects.filter(pk=profile.merged_into_id).first()
        if profile.merged_into_id
        else None,
    }


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
