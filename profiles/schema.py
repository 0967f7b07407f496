"""OpenAPI description of the key authentication (loaded by ProfilesConfig.ready)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class KeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "profiles.authentication.KeyAuthentication"
    name = ["writeKeyBasic", "bearerKey"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "basic",
                "description": "The app's write key as the user name, empty password (Segment SDKs).",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": "The app's write key (SDKs) or server key (backends; required to read).",
            },
        ]
