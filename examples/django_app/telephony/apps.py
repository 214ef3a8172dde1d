import atexit

from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "telephony"

    def ready(self) -> None:
        # Not connected here: ready() also runs for manage.py commands that never
        # touch SignalWire, in runserver's reloader parent, and in a pre-forking
        # server's master before the fork. The client connects on first use
        # (telephony.relay.get_client) and is closed when the process exits.
        from . import relay

        atexit.register(relay.shutdown)
