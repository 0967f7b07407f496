from django.urls import path

from events.api import segment

urlpatterns = [
    path("identify", segment.segment_identify, name="segment-identify"),
    path("track", segment.segment_track, name="segment-track"),
    path("screen", segment.segment_screen, name="segment-screen"),
    path("page", segment.segment_page, name="segment-page"),
    path("group", segment.segment_group, name="segment-group"),
    path("alias", segment.segment_alias, name="segment-alias"),
    path("batch", segment.segment_batch, name="segment-batch"),
    path("import", segment.segment_batch, name="segment-import"),
]
