from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    name = "profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from profiles import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from profiles.authentication import forget_app_keys
        from profiles.models import App

        post_save.connect(forget_app_keys, sender=App, dispatch_uid="app-keys")
        post_delete.connect(forget_app_keys, sender=App, dispatch_uid="app-keys")
