"""The per-key rate limit (API_KEY_RATE_LIMIT), counted in the database (see apikey_rate_take)."""

from rest_framework.throttling import BaseThrottle

from apikeys import services
from apikeys.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    """Requests made with an API key count against that key; others pass (DRF's user and
    anonymous throttles cover them). DRF answers 429 with `Retry-After`."""

    def allow_request(self, request, view) -> bool:
        self.retry_after = None
        if isinstance(request.auth, ApiKey):
            self.retry_after = services.apikey_rate_take(key=request.auth)
        return self.retry_after is None

    def wait(self):
        return self.retry_after
