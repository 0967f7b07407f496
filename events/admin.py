from typing import Any

from django.contrib import admin

from events.models import Event
from profiles.admin.scoping import PiiMaskedJsonMixin, ReadOnlyScopedAdmin


@admin.register(Event)
class EventAdmin(PiiMaskedJsonMixin, ReadOnlyScopedAdmin):
    list_display = ["type", "name", "profile", "timestamp", "source"]
    list_filter = ["type", "source"]
    raw_id_fields = ["profile", "device", "session", "original_profile"]
    search_fields = ["=message_id"]
    show_full_result_count = False
    masked_json_fields = ("properties", "context")

    @admin.display(description="properties (PII masked)")
    def masked_properties(self, event: Event) -> Any:
        return self.masked(event, "properties")

    @admin.display(description="context (PII masked)")
    def masked_context(self, event: Event) -> Any:
        return self.masked(event, "context")
