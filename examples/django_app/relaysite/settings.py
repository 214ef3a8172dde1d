"""Settings of the relay_sync example project: the smallest Django that serves JSON views.

No database, no sessions, no admin: the views only talk to SignalWire.
RelayClient takes its credentials from ``SIGNALWIRE_PROJECT_ID``,
``SIGNALWIRE_API_TOKEN`` and ``SIGNALWIRE_SPACE``; ``RELAY_CLIENT_OPTIONS``
adds or overrides constructor arguments.
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "relay-sync-example-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = ["telephony"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "relaysite.urls"
WSGI_APPLICATION = "relaysite.wsgi.application"
DATABASES: dict = {}
USE_TZ = True

# Keyword arguments for RelayClient (credentials default to the SIGNALWIRE_* variables).
RELAY_CLIENT_OPTIONS: dict = {}
