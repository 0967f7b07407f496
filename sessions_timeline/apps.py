from django.apps import AppConfig


class SessionsTimelineConfig(AppConfig):
    name = "sessions_timeline"
    verbose_name = "Sessions and timeline"
    default_auto_field = "django.db.models.BigAutoField"
