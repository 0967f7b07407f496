"""Staff access: which apps a staff member sees and what their role there lets them do.

Roles (``AppMembership.role``): a **viewer** reads (profiles, events, exports with PII
masked); an **editor** also edits attributes and re-syncs; an **admin** also merges, undoes
merges, erases, and manages keys, members and fields. Seeing PII is a separate Django
permission (``profiles.view_pii``). Superusers see and do everything.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest

from profiles.models import AppMembership

Action = Literal[
    "view", "export", "edit", "resync", "merge", "force_merge", "undo", "erase", "manage"
]
ROLE_RANK = {
    AppMembership.Role.VIEWER: 1,
    AppMembership.Role.EDITOR: 2,
    AppMembership.Role.ADMIN: 3,
}
ACTION_ROLE: dict[str, str] = {
    "view": AppMembership.Role.VIEWER,
    "export": AppMembership.Role.VIEWER,
    "edit": AppMembership.Role.EDITOR,
    "resync": AppMembership.Role.EDITOR,
    "merge": AppMembership.Role.ADMIN,
    "force_merge": AppMembership.Role.ADMIN,
    "undo": AppMembership.Role.ADMIN,
    "erase": AppMembership.Role.ADMIN,
    "manage": AppMembership.Role.ADMIN,
}


def staff_roles(request: HttpRequest) -> dict[int, str]:
    """The staff member's role per app id (read once per request)."""
    cached = getattr(request, "_pushapp_roles", None)
    if cached is None:
        user = request.user
        cached = (
            dict(AppMembership.objects.filter(user=user).values_list("app_id", "role"))
            if user.is_authenticated and user.is_active and user.is_staff
            else {}
        )
        request._pushapp_roles = cached  # type: ignore[attr-defined]
    return cached


def is_superuser(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def visible_app_ids(request: HttpRequest) -> list[int] | None:
    """The apps the staff member sees; None means all (a superuser)."""
    if is_superuser(request):
        return None
    return sorted(staff_roles(request))


def can(request: HttpRequest, action: Action, app_id: int | None = None) -> bool:
    """May the staff member do ``action`` in app ``app_id`` (in any of their apps if None)?"""
    if is_superuser(request):
        return True
    needed = ROLE_RANK[ACTION_ROLE[action]]  # type: ignore[index]
    roles = staff_roles(request)
    if app_id is None:
        return any(ROLE_RANK[role] >= needed for role in roles.values())  # type: ignore[index]
    role = roles.get(app_id)
    return role is not None and ROLE_RANK[role] >= needed  # type: ignore[index]


def can_see_pii(request: HttpRequest) -> bool:
    user: Any = request.user
    return bool(user.is_authenticated and user.has_perm("profiles.view_pii"))
