from django.urls import path

from sessions_timeline.api import views

# Included before profiles.api.urls, whose <path:user_id> would otherwise take ".../timeline".
urlpatterns = [
    path(
        "profiles/by-id/<str:public_id>/timeline",
        views.TimelineByPublicIdView.as_view(),
        name="timeline-by-id",
    ),
    path("profiles/<path:user_id>/timeline", views.TimelineByUserIdView.as_view(), name="timeline"),
]
