from django.urls import path

from web import views


def _both(route: str, view, name: str):
    """The route with and without a trailing slash, neither redirecting (APPEND_SLASH is off)."""
    return [path(route, view, name=name), path(route + "/", view, name=f"{name}-slash")]


urlpatterns = [
    *_both("web", views.index, "web-index"),
    *_both("web/login", views.login_view, "web-login"),
    *_both("web/logout", views.logout_view, "web-logout"),
    *_both("web/session", views.session_view, "web-session"),
    *_both("web/config", views.config_view, "web-config"),
]
