import pytest

from scripts import validation as v
from teckochecker.errors import ValidationFailed


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Hello World", "hello-world"),
        ("Data Backup Script!", "data-backup-script"),
        ("API Call #1", "api-call-1"),
        ("  Café  déjà vu ", "cafe-deja-vu"),
        ("snake_case name", "snake-case-name"),
        ("a -- b", "a-b"),
        ("!!!", "script"),
        ("日本語", "script"),
    ],
)
def test_safe_names_follow_the_prd(name, slug):
    assert v.slugify_name(name) == slug


def test_a_syntax_error_names_its_line():
    with pytest.raises(v.CodeSyntaxError) as caught:
        v.clean_code("x = 1\ny = 2\nif x\n    pass\n")
    assert caught.value.line == 3
    assert caught.value.detail.startswith("Line 3: ")
    assert caught.value.extra == {"line": 3}


def test_valid_code_is_kept_as_typed():
    code = "import os\nprint(os.getcwd())\n"
    assert v.clean_code(code) == code


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * *", "5 fields"),
        ("0 3 * * * *", "5 fields"),
        ("61 * * * *", "minute field '61'"),
        ("0 25 * * *", "hour field '25'"),
        ("0 3 32 * *", "day of month field '32'"),
        ("0 3 * 13 *", "month field '13'"),
        ("0 3 * * funday", "day of week field 'funday'"),
        ("*/x * * * *", "minute field '*/x'"),
    ],
)
def test_a_bad_cron_expression_says_which_field(cron, message):
    with pytest.raises(ValidationFailed) as caught:
        v.clean_cron(cron)
    assert message in caught.value.detail
    assert caught.value.detail.startswith("schedule.cron: ")


def test_cron_fields_are_normalised():
    assert v.clean_cron("  */15   3-5 * * mon-fri ") == "*/15 3-5 * * mon-fri"


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"type": "weekly"}, "schedule.type"),
        ({"type": "interval", "every": 0, "unit": "minutes"}, "schedule.every"),
        ({"type": "interval", "every": "5", "unit": "minutes"}, "schedule.every"),
        ({"type": "interval", "every": 5, "unit": "days"}, "schedule.unit"),
        ({"type": "interval", "every": 200, "unit": "hours"}, "schedule.every"),
        ({"type": "cron", "cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "schedule.timezone"),
        ({"type": "cron"}, "schedule.cron"),
        ("every day", "schedule"),
    ],
)
def test_bad_schedules_are_refused_with_the_field(schedule, field):
    with pytest.raises(ValidationFailed) as caught:
        v.clean_schedule(schedule)
    assert field in caught.value.errors


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "1X", "value": "a"}], "not a valid variable name"),
        ([{"name": "A", "value": "a"}, {"name": "A", "value": "b"}], "listed twice"),
        ([{"name": "A"}], "exactly one of"),
        ([{"name": "A", "value": "a", "secret": "s"}], "exactly one of"),
        ([{"name": "PATH", "value": "/x"}], "reserved"),
        ([{"name": "LD_PRELOAD", "value": "/x.so"}], "reserved"),
        ([{"name": "TECKOCHECKER_RUN_ID", "value": "1"}], "reserved"),
        ([{"name": "A", "value": 1}], "must be a string"),
        ({"A": "b"}, "must be a list"),
    ],
)
def test_bad_environment_variables_are_refused(env, message):
    with pytest.raises(ValidationFailed) as caught:
        v.clean_env(env)
    assert message in caught.value.detail


def test_requirements_are_checked_before_anything_is_installed():
    with pytest.raises(ValidationFailed) as caught:
        v.clean_requirements("requests==2.32.3\n--index-url https://evil.example\n")
    assert caught.value.errors["requirements"][0].startswith("Line 2")
    assert v.clean_requirements("  requests==2.32.3\n\n") == "requests==2.32.3\n"


def test_the_python_version_must_exist_on_this_machine():
    with pytest.raises(ValidationFailed) as caught:
        v.clean_python_version("2.7")
    assert "2.7" in caught.value.detail and "available" in caught.value.detail
