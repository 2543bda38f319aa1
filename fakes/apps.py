from django.apps import AppConfig


class FakesConfig(AppConfig):
    """Local fakes of OpenAI's Batch API and Keboola's Job Queue API (`manage.py fakeservers`),
    and the walk-through that runs the whole product against them (`manage.py demo`)."""

    name = "fakes"
    verbose_name = "Fake vendor servers"
