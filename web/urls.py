from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from web import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("", views.fleet, name="fleet"),
    path("assets/<int:asset_id>/", views.asset_detail, name="asset"),
    path("admin/", admin.site.urls),
]

handler403 = "web.views.forbidden"
