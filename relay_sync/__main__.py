"""``python -m relay_sync``: the same as the ``relay-sync`` command (see ``cli.py``)."""

import sys

from .cli import main

sys.exit(main())
