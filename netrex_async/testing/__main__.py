"""``python -m netrex_async.testing``: the fake provider, standalone."""

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m netrex_async.testing"))
