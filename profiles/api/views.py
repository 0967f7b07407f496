"""The server API on profiles (server key): profiles addressed by user id or public id."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from profiles.api.serializers import ProfileOutSerializer
from profiles.authentication import AppKey, HasServerKey, KeyAuthentication
from profiles.models import Profile
from profiles.selectors import profile_get_by_public_id, profile_get_by_user_id


class ServerView(APIView):
    authentication_classes = [KeyAuthentication]
    permission_classes = [HasServerKey]

    def app_key(self, request: Request) -> AppKey:
        assert isinstance(request.user, AppKey)
        return request.user


def _out(profile: Profile) -> dict:
    return ProfileOutSerializer(profile).data  # type: ignore[return-value]


class ProfileByUserIdView(ServerView):
    @extend_schema(responses={200: ProfileOutSerializer}, summary="Get a profile by user id")
    def get(self, request: Request, user_id: str) -> Response:
        return Response(
            _out(profile_get_by_user_id(app=self.app_key(request).app, user_id=user_id))
        )


class ProfileByPublicIdView(ServerView):
    @extend_schema(responses={200: ProfileOutSerializer}, summary="Get a profile by its public id")
    def get(self, request: Request, public_id: str) -> Response:
        return Response(
            _out(profile_get_by_public_id(app=self.app_key(request).app, public_id=public_id))
        )
