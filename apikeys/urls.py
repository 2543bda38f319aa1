from apikeys.api import ApiKeyViewSet

# Registered on the project's one API router (teckochecker/urls.py): (prefix under /api, viewset, basename).
api_resources = [("admin/keys", ApiKeyViewSet, "apikey")]
