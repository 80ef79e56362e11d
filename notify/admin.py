from django.contrib import admin

from notify.models import Delivery, Event, Subscription

admin.site.register(Subscription)
admin.site.register(Event)
admin.site.register(Delivery)
