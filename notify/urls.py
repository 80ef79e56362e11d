from django.urls import path

from notify import views

urlpatterns = [
    path("notifications/", views.subscriptions, name="notify-subscriptions"),
    path("notifications/new/", views.subscription_edit, name="notify-new"),
    path("notifications/<id:sub_id>/", views.subscription_edit, name="notify-edit"),
    path("notifications/<id:sub_id>/delete/", views.subscription_delete, name="notify-delete"),
    path("notifications/deliveries/<id:delivery_id>/", views.delivery_detail, name="notify-delivery"),
    path("notifications/deliveries/<id:delivery_id>/replay/", views.delivery_replay, name="notify-replay"),
    path("n/<str:token>/", views.signed_link, name="notify-link"),
]
