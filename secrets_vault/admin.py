"""Admin for secrets: the value is write-only and never rendered, not even as ciphertext.

Saving and deleting go through `secrets_vault.services`, like the API and `manage.py secret`.
"""

from __future__ import annotations

import copy

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse

from secrets_vault import services
from secrets_vault.exceptions import SecretInUse
from secrets_vault.models import Secret, SecretType
from secrets_vault.usage import SecretUsers, registered
from teckochecker.errors import DomainError


class ServiceForm(forms.ModelForm):
    """An admin form whose save is a service call, so validation is the services' own.

    The service runs at the end of `clean()`: its ValidationFailed/DomainError messages land on
    the form like any field error. The admin wraps the request in a transaction and has nothing
    left to validate afterwards, so `save_model` of the admin using this form must do nothing.
    No model field is bound (`fields = []`): the declared fields are all there is, and Django's
    model validation never second-guesses the service.
    """

    initial_from_instance: tuple[str, ...] = ()
    # Service error key -> form field, where the names differ.
    error_fields: dict[str, str] = {}

    class Meta:
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for name in self.initial_from_instance:
                self.initial.setdefault(name, getattr(self.instance, name))

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                self.instance = self.call_service(cleaned)
            except DomainError as exc:
                self.add_domain_error(exc)
        return cleaned

    def call_service(self, cleaned: dict):
        raise NotImplementedError

    def add_domain_error(self, exc: DomainError) -> None:
        if not exc.errors:
            self.add_error(None, exc.detail)
            return
        for key, messages_ in exc.errors.items():
            field = self.error_fields.get(key, key)
            self.add_error(field if field in self.fields else None, messages_)


class SecretForm(ServiceForm):
    name = forms.CharField(max_length=255)
    type = forms.ChoiceField(choices=SecretType.choices)
    # Write-only: render_value=False, so not even a re-displayed form echoes what was typed.
    value = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. It is never shown again.",
    )
    initial_from_instance = ("name", "type")

    class Meta(ServiceForm.Meta):
        model = Secret

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["value"].help_text = "Leave empty to keep the current value. It is never shown."

    def call_service(self, cleaned: dict) -> Secret:
        if self.instance.pk is None:
            return services.secret_create(name=cleaned["name"], type=cleaned["type"], value=cleaned["value"])
        # A copy: a refused change must not rename the object the page is still showing.
        return services.secret_update(
            secret=copy.copy(self.instance),
            name=cleaned["name"],
            type=cleaned["type"],
            value=cleaned["value"] or None,
        )


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    fields = ("name", "type", "value")
    list_display = ("name", "type", "created_at")
    list_filter = ("type",)
    search_fields = ("name",)
    ordering = ("-created_at", "-id")
    actions = ["delete_selected"]

    def get_queryset(self, request):
        # Never load (or decrypt) values in the admin; count users in the same query.
        counts = {f"{users.name}_count": users.count() for users in registered()}
        return super().get_queryset(request).defer("value").annotate(**counts)

    def get_list_display(self, request):
        """One column per app that registered its users of secrets (`secrets_vault.usage`)."""
        return (*self.list_display, *(_users_column(users) for users in registered()))

    def get_form(self, request, obj=None, change=False, **kwargs):
        return self.form  # fields are the form's own; see ServiceForm

    def save_model(self, request, obj, form, change) -> None:
        pass  # saved by SecretForm through services.secret_create / secret_update

    def delete_model(self, request, obj: Secret) -> None:
        services.secret_delete(secret=obj)

    def delete_queryset(self, request, queryset) -> None:
        refusals = []
        for secret in queryset:
            try:
                services.secret_delete(secret=secret)
            except SecretInUse as exc:
                refusals.append(exc.detail)
        if refusals:
            raise SecretInUse(" ".join(refusals))  # rolls the whole batch back (see delete_selected)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)  # atomic: log entry rolls back
        except SecretInUse as exc:
            self.message_user(request, f"Not deleted: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:secrets_vault_secret_change", args=[object_id]))

    @admin.action(permissions=["delete"], description="Delete selected secrets")
    def delete_selected(self, request, queryset):
        """Django's action, all or nothing: one secret in use and none is deleted."""
        try:
            with transaction.atomic():
                return django_delete_selected(self, request, queryset)
        except SecretInUse as exc:
            self.message_user(request, f"Nothing was deleted: {exc.detail}", messages.ERROR)
            return None


def _users_column(users: SecretUsers):
    @admin.display(description=users.title, ordering=f"{users.name}_count")
    def column(obj: Secret) -> int:
        return getattr(obj, f"{users.name}_count")

    column.__name__ = f"{users.name}_using"  # the column's CSS class, field-<name>_using
    return column
