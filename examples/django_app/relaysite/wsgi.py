"""WSGI entry point: ``gunicorn -w 4 relaysite.wsgi`` (each worker makes its own RelayClient)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relaysite.settings")
application = get_wsgi_application()
