from django.urls import path

from events.api import native

urlpatterns = [
    path("devices", native.DeviceRegisterView.as_view(), name="native-devices"),
    path("devices/<path:device_id>/logout", native.LogoutView.as_view(), name="native-logout"),
    path("identify", native.IdentifyView.as_view(), name="native-identify"),
    path("events", native.EventBatchView.as_view(), name="native-events"),
]
