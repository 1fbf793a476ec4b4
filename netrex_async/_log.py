"""The logger tree: ``netrex_async`` and its children.

Records carry structured fields in ``extra`` (``event``, ``grant``, ``expires_in``,
``attempt``, ``store``); no record ever carries a secret.
"""

from __future__ import annotations

import logging

root = logging.getLogger("netrex_async")
oauth = logging.getLogger("netrex_async.oauth")
manager = logging.getLogger("netrex_async.manager")
client = logging.getLogger("netrex_async.client")
stores = logging.getLogger("netrex_async.stores")
