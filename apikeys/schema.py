"""The API key as an OpenAPI security scheme (drf-spectacular finds it when apps are ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`tck_...`) from `manage.py apikey create`, the admin or the page. "
            "A scripts:trigger key may only trigger scripts and follow its runs.",
        }
