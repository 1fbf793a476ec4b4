"""Token stores with optional dependencies, one public module each.

* :mod:`netrex_async.stores.redis`: ``RedisTokenStore``, a grant shared by a fleet of
  processes on many hosts (``pip install 'netrex-async[redis]'``; in a clone of the
  repository, ``pip install -e '.[redis]'``).

``MemoryTokenStore`` and ``FileTokenStore`` need nothing extra and are importable from
:mod:`netrex_async` itself.
"""
