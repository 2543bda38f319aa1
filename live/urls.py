from live import api
from teckochecker.api import api_path

urlpatterns = [
    *api_path("api/events", api.EventStreamView.as_view(), "events"),
]
