from scripts import api, trigger_api
from teckochecker.api import api_path

# Registered on the project's one API router (teckochecker/urls.py): (prefix under /api, viewset, basename).
api_resources = [
    ("scripts", api.ScriptViewSet, "script"),
    ("runs", api.RunViewSet, "run"),
]

urlpatterns = [
    *api_path("api/pythons", api.PythonListView.as_view(), "python-list"),
    *api_path("api/script-templates", api.TemplateListView.as_view(), "script-template-list"),
    *api_path("api/scripts/<slug:slug>/trigger", trigger_api.ScriptTriggerView.as_view(), "script-trigger"),
]
