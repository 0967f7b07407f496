"""PushApp's URLs plus the bench-only naive baseline endpoint."""

from django.urls import path

from bench.naive_view import NaiveEventBatchView
from pushapp.urls import urlpatterns as pushapp_urlpatterns

urlpatterns = [
    path("bench/naive-events", NaiveEventBatchView.as_view(), name="bench-naive-events"),
    *pushapp_urlpatterns,
]
