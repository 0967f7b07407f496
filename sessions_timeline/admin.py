from django.contrib import admin

from sessions_timeline.models import Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "profile", "device", "started_at", "last_event_at", "event_count"]
    raw_id_fields = ["profile", "device", "original_profile"]
    show_full_result_count = False
