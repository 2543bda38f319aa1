"""What every admin action on selected rows does: call one service per row and report once."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages

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
