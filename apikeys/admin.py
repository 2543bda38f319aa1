"""Admin for API keys. Adding one shows the key on the page that answers the save, once, and
stores it nowhere (not in a message, which would sit in the session); afterwards only the
prefix is shown. Keys are revoked, not edited."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from apikeys import services
from apikeys.models import ApiKey, ApiKeyScope
from scripts.models import Script
from secrets_vault.admin import ServiceForm
from teckochecker.admin_actions import apply_each


class ApiKeyForm(ServiceForm):
    name = forms.CharField(max_length=255)
    scope = forms.ChoiceField(choices=ApiKeyScope.choices, initial=ApiKeyScope.TRIGGER)
    script = forms.ModelChoiceField(
        queryset=Script.objects.only("id", "name", "slug"),
        required=False,
        empty_label="(all scripts)",
        help_text="scripts:trigger only: the one script this key may trigger.",
    )
    expires_at = forms.CharField(
        label="Expires",
        required=False,
        help_text="Empty: never. A date (2027-01-31), a date-time, or a span from now: 30d, 12h, 8w.",
    )

    class Meta(ServiceForm.Meta):
        model = ApiKey

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.raw_key: str | None = None

    def call_service(self, cleaned: dict) -> ApiKey:
        key, self.raw_key = services.apikey_create(
            name=cleaned["name"],
            owner=self.owner,
            scope=cleaned["scope"],
            script=cleaned["script"],
            expires_at=cleaned["expires_at"] or None,
        )
        return key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix_shown",
        "scope",
        "script",
        "owner",
        "state_shown",
        "created_at",
        "expires_at",
        "last_used_at",
    )
    list_filter = ("scope", "revoked_at")
    search_fields = ("name", "prefix")
    readonly_fields = (
        "name", "prefix_shown", "scope", "script", "owner", "state_shown", "created_at", "expires_at",
        "last_used_at", "revoked_at",
    )  # fmt: skip
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("script", "owner")

    def get_fields(self, request, obj=None):
        return ("name", "scope", "script", "expires_at") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)

        class Form(ApiKeyForm):
            def __init__(self, *args, **inner):
                super().__init__(*args, owner=request.user, **inner)

        return Form

    def save_model(self, request, obj, form, change) -> None:
        pass  # made by ApiKeyForm through services.apikey_create; nothing else changes

    def response_add(self, request, obj, post_url_continue=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "key": obj,
            "raw_key": getattr(request, "apikey_raw_key", None),
            "title": "API key created",
        }
        response = TemplateResponse(request, "admin/apikeys/apikey/created.html", context)
        add_never_cache_headers(response)
        return response

    def save_form(self, request, form, change):
        # On the request, not on this admin (one instance serves every thread).
        request.apikey_raw_key = getattr(form, "raw_key", None)
        return super().save_form(request, form, change)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Prefix")
    def prefix_shown(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    @admin.display(description="State")
    def state_shown(self, key: ApiKey) -> str:
        return key.state()

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        apply_each(
            self,
            request,
            queryset,
            service=services.apikey_revoke,
            argument="key",
            noun="API key",
            done="revoked",
        )
