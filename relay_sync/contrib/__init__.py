"""Optional integrations, each behind its own extra (``relay-sync[prometheus]``,
``relay-sync[celery]``).

The core package never imports anything from here: importing ``relay_sync``
does not need (or load) the libraries these modules use.
"""
