from django.urls import path

from . import number_views

# Mounted under /t/<tenant_slug>/ by commsportal.urls, before the apps' own `numbers/...` pages
# (messaging's number history); the number inventory is tenants'.
urlpatterns = [
    path("numbers/", number_views.number_list, name="number_list"),
    path("numbers/sync/", number_views.number_sync, name="number_sync"),
    path("numbers/buy/", number_views.number_buy, name="number_buy"),
    path("numbers/<str:sid>/fix/", number_views.number_fix_webhooks, name="number_fix_webhooks"),
    path("numbers/<str:sid>/release/", number_views.number_release, name="number_release"),
]
