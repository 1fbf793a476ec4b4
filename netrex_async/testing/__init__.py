"""An embedded fake of the Netrex provider, for tests, demos and your own test suite.

:class:`FakeNetrex` serves the provider's OAuth2 endpoints and a small GraphQL API on
loopback, with scriptable faults (:class:`Fault`), counters and a request log. The pytest
plugin :mod:`netrex_async.testing.pytest_plugin` gives ``fake_netrex`` and
``netrex_client`` fixtures; ``python -m netrex_async.testing`` runs it standalone.

graphql-core (the ``testing`` extra) is needed once a fake starts, not to import this.
"""

from ._data import Camera, Event, FakeData, User
from ._faults import (
    DelayFault,
    DropFault,
    Endpoint,
    Fault,
    MalformedFault,
    MalformedKind,
    RedirectFault,
    StatusFault,
)
from ._live import EventSource
from ._oauth import Grant
from ._records import Counters, RecordedRequest, SecretMapping
from ._server import FakeNetrex

__all__ = [
    "Camera",
    "Counters",
    "DelayFault",
    "DropFault",
    "Endpoint",
    "Event",
    "EventSource",
    "FakeData",
    "FakeNetrex",
    "Fault",
    "Grant",
    "MalformedFault",
    "MalformedKind",
    "RecordedRequest",
    "RedirectFault",
    "SecretMapping",
    "StatusFault",
    "User",
]
