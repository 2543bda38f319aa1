"""Admin pieces every app shares: what an action on selected rows does (call one service per
row, report once) and the base of read-only admins."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages

from teckochecker.errors import DomainError


def apply_each(
    modeladmin, request, queryset, *, service: Callable, argument: str, noun: str, done: str
) -> None:
    """Call `service(<argument>=row)` for each selected row. One success message counts what was
    done; the refusals (a service's DomainError, e.g. pausing a finished job) follow as one
    warning, so one refused row never hides the rest."""
    count, refusals = 0, []
    for row in queryset:
        try:
            service(**{argument: row})
            count += 1
        except DomainError as exc:
            refusals.append(exc.detail)
    if count:
        modeladmin.message_user(
            request, f"{count} {noun}{'s' if count != 1 else ''} {done}.", messages.SUCCESS
        )
    if refusals:
        modeladmin.message_user(request, " ".join(refusals), messages.WARNING)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin shows but never adds, changes or deletes (services do). `list_defer`: big
    fields (a run's output, a version's code) that only a row's own page loads."""

    list_defer: tuple[str, ...] = ()

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        own_page = request.resolver_match and "change" in (request.resolver_match.url_name or "")
        return qs if own_page or not self.list_defer else qs.defer(*self.list_defer)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
