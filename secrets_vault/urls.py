from secrets_vault.api import SecretViewSet

# Registered on the project's one API router (teckochecker/urls.py): (prefix under /api, viewset, basename).
api_resources = [("admin/secrets", SecretViewSet, "secret")]
