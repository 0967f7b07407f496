from django.urls import path

from profiles.api import views

urlpatterns = [
    path(
        "profiles/by-id/<str:public_id>",
        views.ProfileByPublicIdView.as_view(),
        name="profile-by-id",
    ),
    path("profiles/<path:user_id>", views.ProfileByUserIdView.as_view(), name="profile-detail"),
]
