"""Reads on profiles: every lookup is scoped to one app."""

from __future__ import annotations

import uuid

from django.http import Http404

from profiles.models import App, Profile, ProfileAlias


def profile_get_by_user_id(*, app: App, user_id: str) -> Profile:
    """The live profile of ``user_id`` (a user id or an alias; tombstones followed)."""
    profile = Profile.objects.filter(app=app, user_id=user_id).first()
    if profile is None:
        alias = (
            ProfileAlias.objects.filter(app=app, alias=user_id).select_related("profile").first()
        )
        profile = alias.profile if alias else None
    if profile is None:
        raise Http404("No profile with this user id.")
    return profile_live(profile)


def profile_get_by_public_id(*, app: App, public_id: str) -> Profile:
    try:
        parsed = uuid.UUID(public_id)
    except ValueError:
        raise Http404("Not a profile id.") from None
    profile = Profile.objects.filter(app=app, public_id=parsed).first()
    if profile is None:
        raise Http404("No profile with this id.")
    return profile_live(profile)


def profile_live(profile: Profile) -> Profile:
    """Rule 8: follow ``merged_into`` to the live profile."""
    for _ in range(100):
        if profile.merged_into_id is None:
            return profile
        profile = Profile.objects.get(pk=profile.merged_into_id)
    raise RuntimeError(f"merge chain from profile {profile.pk} does not end")
