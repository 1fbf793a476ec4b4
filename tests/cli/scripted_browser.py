"""A browser for ``login --browser-command``: open the URL, follow redirects, read the page.

Run as ``python scripted_browser.py URL``. Proxies are ignored: everything is on loopback.
"""

import sys
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=20) as page:
    page.read()
