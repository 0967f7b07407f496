from django.contrib import admin

from events.models import Event
from profiles.admin.scoping import ReadOnlyScopedAdmin


@admin.register(Event)
class EventAdmin(ReadOnlyScopedAdmin):
    list_display = ["type", "name", "profile", "timestamp", "source"]
    list_filter = ["type", "source"]
    raw_id_fields = ["profile", "device", "session", "original_profile"]
    search_fields = ["=message_id"]
    show_full_result_count = False
