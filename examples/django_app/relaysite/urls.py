from django.urls import path
from telephony import views

urlpatterns = [
    path("sms/", views.send_sms),
    path("calls/", views.start_call),
    path("tasks/<str:context>/", views.deliver_task),
    path("healthz", views.healthz),
]
