from django.urls import path

from events.api import segment

urlpatterns = [
    path("identify", segment.SegmentIdentifyView.as_view(), name="segment-identify"),
    path("track", segment.SegmentTrackView.as_view(), name="segment-track"),
    path("screen", segment.SegmentScreenView.as_view(), name="segment-screen"),
    path("page", segment.SegmentPageView.as_view(), name="segment-page"),
    path("group", segment.SegmentGroupView.as_view(), name="segment-group"),
    path("alias", segment.SegmentAliasView.as_view(), name="segment-alias"),
    path("batch", segment.SegmentBatchView.as_view(), name="segment-batch"),
    path("import", segment.SegmentBatchView.as_view(), name="segment-import"),
]
