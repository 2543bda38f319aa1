"""Import and export in the Django admin: a page linked from the admin index that downloads the
export and imports a bundle, a dry run first. Staff only and CSRF-checked (`admin_view`); the
work is bundles.services', exactly as for the API and the CLI."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from bundles.api import FILENAME, export_response
from bundles.services import BundleExportConflict, bundle_import
from teckochecker.errors import DomainError

# The admin has no model to list here, so the index gets a template with a link to the page.
admin.site.index_template = "admin/bundles/index.html"


class BundleForm(forms.Form):
    """A bundle as an uploaded file (the first step) or as the text a dry run checked (the
    confirmation, which imports exactly what was previewed)."""

    file = forms.FileField(required=False, label="Bundle file")
    bundle = forms.CharField(required=False, widget=forms.HiddenInput, strip=False)

    def clean(self):
        upload, text = self.cleaned_data.get("file"), self.cleaned_data.get("bundle")
        if upload is not None:
            # The same limit as the API's body, so that the confirmation (which carries the
            # text back in a form field) is accepted too.
            if upload.size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise forms.ValidationError(
                    f"The file is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
                    "(MAX_REQUEST_BYTES); import it with `manage.py import` instead."
                )
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        if not text:
            raise forms.ValidationError("Choose a bundle file (written by export).")
        try:
            self.cleaned_data["parsed"] = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"The file is not JSON: {exc}.") from None
        self.cleaned_data["bundle"] = text
        return self.cleaned_data


def bundle_page(request):
    """GET: the page. POST without `confirm`: a dry run and its report, with the button that
    imports the same text. POST with `confirm`: the import and its report."""
    form = BundleForm(request.POST, request.FILES) if request.method == "POST" else BundleForm()
    context = {
        **admin.site.each_context(request),
        "title": "Import and export",
        "form": form,
        "filename": FILENAME,
    }
    if request.method == "POST" and form.is_valid():
        dry_run = "confirm" not in request.POST
        try:
            report = bundle_import(
                bundle=form.cleaned_data["parsed"],
                dry_run=dry_run,
                author=f"{request.user.get_username()} (admin import)",
            )
        except DomainError as exc:  # BundleInvalid names every place; others have a detail only
            context["problems"] = exc.errors
            messages.error(request, exc.detail)
        else:
            context["report"] = report
            context["bundle"] = form.cleaned_data["bundle"]
    return TemplateResponse(request, "admin/bundles/bundle.html", context)


def bundle_download(request):
    try:
        return export_response(download=True)
    except BundleExportConflict as exc:
        messages.error(request, exc.detail)
        return redirect("bundle-admin")


urlpatterns = [
    path("", admin.site.admin_view(bundle_page), name="bundle-admin"),
    path("export", admin.site.admin_view(bundle_download), name="bundle-admin-export"),
]
