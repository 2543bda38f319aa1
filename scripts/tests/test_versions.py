"""Versions of a script's code and requirements: kept by the one save path, compared, restored,
pruned, and the optimistic-concurrency check of `base_version`."""

import pytest

from scripts import services
from scripts.models import ScriptVersion
from scripts.services.exceptions import VersionConflict, VersionNotFound
from scripts.tests.factories import ScriptFactory
from teckochecker.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def _numbers(script):
    return list(ScriptVersion.objects.filter(script=script).values_list("number", flat=True))


def test_create_is_version_one_and_each_code_or_requirements_save_the_next(sent):
    script = services.script_create(name="Versioned", code="a = 1\nb = 2\n", author="alice")
    assert script.version == 1
    first = services.version_get(script=script, number=1)
    assert (first.author, first.added, first.removed, first.code) == ("alice", 2, 0, "a = 1\nb = 2\n")

    script = services.script_update(script=script, code="a = 1\nb = 3\nc = 4\n", author="bob")
    script = services.script_update(script=script, requirements="requests==2.32.3\n", author="bob")
    assert script.version == 3
    second, third = (services.version_get(script=script, number=n) for n in (2, 3))
    assert (second.added, second.removed, second.author) == (2, 1, "bob")
    assert (third.added, third.removed, third.code) == (1, 0, "a = 1\nb = 3\nc = 4\n")

    # Settings, and a save with the same code, make no version.
    script = services.script_update(script=script, network=True, code=script.code)
    assert script.version == 3 and _numbers(script) == [3, 2, 1]


def test_diff_between_two_versions_in_either_direction(sent):
    script = services.script_create(name="Diffed", code="print(1)\n")
    script = services.script_update(script=script, code="print(2)\nprint(3)\n", requirements="rich\n")
    diff = services.version_diff(script=script, old=1, new=2)
    assert (diff["added"], diff["removed"]) == (3, 1)
    assert "-print(1)\n+print(2)\n+print(3)\n" in diff["code_diff"]
    assert "--- code (version 1)" in diff["code_diff"] and "+rich" in diff["requirements_diff"]
    back = services.version_diff(script=script, old=2, new=1)
    assert (back["added"], back["removed"]) == (1, 3)
    with pytest.raises(VersionNotFound, match="has no version 9 \\(the newest is 2\\)"):
        services.version_diff(script=script, old=1, new=9)


def test_restore_is_a_new_version_that_names_its_source(sent):
    script = services.script_create(name="Restored", code="print('v1')\n", requirements="rich\n")
    script = services.script_update(script=script, code="print('v2')\n", requirements="")
    build_before = script.env_build_token
    script, changed = services.version_restore(script=script, number=1, author="carol")
    assert changed and script.version == 3
    assert (script.code, script.requirements) == ("print('v1')\n", "rich\n")
    restored = services.version_get(script=script, number=3)
    assert (restored.restored_from, restored.author) == (1, "carol")
    # The requirements came back: the environment is rebuilt.
    assert script.env_build_token != build_before
    # Restoring what is already current changes nothing.
    script, changed = services.version_restore(script=script, number=3)
    assert not changed and script.version == 3


def test_retention_keeps_the_newest_and_never_the_current_one(sent, settings):
    settings.SCRIPTS_VERSIONS_KEEP = 3
    script = services.script_create(name="Pruned", code="x = 0\n")
    for i in range(1, 6):
        script = services.script_update(script=script, code=f"x = {i}\n")
    assert _numbers(script) == [6, 5, 4]
    with pytest.raises(VersionNotFound, match="only the newest 3 are kept"):
        services.version_get(script=script, number=2)
    settings.SCRIPTS_VERSIONS_KEEP = 1
    script = services.script_update(script=script, code="x = 7\n")
    assert _numbers(script) == [7]


def test_a_save_from_an_older_version_is_refused_and_names_the_newer_one(sent):
    script = services.script_create(name="Contested", code="print('base')\n", author="alice")
    services.script_update(script=script, code="print('bob')\n", base_version=1, author="bob")
    with pytest.raises(VersionConflict) as caught:
        services.script_update(script=script, code="print('alice')\n", base_version=1, author="alice")
    error = caught.value
    assert "after version 1, which your edit started from: version 2 was saved by bob at " in error.detail
    assert error.extra["current_version"] == 2 and error.extra["saved_by"] == "bob"
    script.refresh_from_db()
    assert script.code == "print('bob')\n" and script.version == 2  # nothing of alice's was saved

    # From the newest version, or without base_version (old clients), the save goes through;
    # a settings-only save from an older version does not touch what was versioned.
    services.script_update(script=script, network=True, base_version=1)
    script = services.script_update(script=script, code="print('alice')\n", base_version=2)
    script = services.script_update(script=script, code="print('last wins')\n")
    assert script.version == 4


@pytest.mark.parametrize("bad", ["2", -1, True, 1.5])
def test_base_version_must_be_a_whole_number(sent, bad):
    script = ScriptFactory()
    with pytest.raises(ValidationFailed, match="base_version must be a whole number"):
        services.script_update(script=script, code="print(1)\n", base_version=bad)


def test_a_script_from_before_versions_starts_its_history_at_its_first_save(sent):
    script = ScriptFactory(code="old = True\n")  # stored directly: version 0, no rows
    script = services.script_update(script=script, code="new = True\n", author="dave")
    version = services.version_get(script=script, number=1)
    assert (version.added, version.removed, script.version) == (1, 1, 1)
