from django.urls import path

from profiles.api import views

# Order matters: a user id is any string (<path:...> takes slashes), so the suffix routes come
# before the bare profile route, and by-id/ before both. (The timeline routes live in
# sessions_timeline.api.urls, included first.) A user id that itself ends in "/events" or
# "/export" is reached through its profile's public id.
urlpatterns = [
    path(
        "profiles/by-id/<str:public_id>/events",
        views.ProfileEventsByPublicIdView.as_view(),
        name="profile-by-id-events",
    ),
    path(
        "profiles/by-id/<str:public_id>/export",
        views.ProfileExportByPublicIdView.as_view(),
        name="profile-by-id-export",
    ),
    path(
        "profiles/by-id/<str:public_id>",
        views.ProfileByPublicIdView.as_view(),
        name="profile-by-id",
    ),
    path(
        "profiles/<path:user_id>/events",
        views.ProfileEventsByUserIdView.as_view(),
        name="profile-events",
    ),
    path(
        "profiles/<path:user_id>/export",
        views.ProfileExportByUserIdView.as_view(),
        name="profile-export",
    ),
    path("profiles/<path:user_id>", views.ProfileByUserIdView.as_view(), name="profile-detail"),
]
