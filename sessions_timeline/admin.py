from django.contrib import admin

from profiles.admin.scoping import ReadOnlyScopedAdmin
from sessions_timeline.models import Session


@admin.register(Session)
class SessionAdmin(ReadOnlyScopedAdmin):
    list_display = ["pk", "profile", "device", "started_at", "last_event_at", "event_count"]
    raw_id_fields = ["profile", "device", "original_profile"]
    show_full_result_count = False
