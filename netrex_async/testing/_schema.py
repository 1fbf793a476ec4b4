"""The fake's GraphQL API: a small, realistic schema over in-memory cameras and events.

Only ``cameraList { name }`` is documented by the provider; the rest is a plausible shape
for tests. Rights are honoured roughly: ``cameraList``, ``camera`` and ``events`` need
``read`` (``events`` also accepts ``events``); mutations need ``write``; ``me`` needs a
valid token only. A missing right is a GraphQL error on that field, with HTTP 200.

graphql-core is imported here only; the module is loaded when the first fake starts, so
the pytest plugin loads without the ``testing`` extra.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, cast

import attrs
import graphql

from ._data import Camera, Event, FakeData

__all__ = ["SDL", "execute", "schema"]

SDL: Final = '''
"""Read access to cameras and their events."""
type Query {
  "Every camera the user may see."
  cameraList: [Camera!]!
  "One camera, or null if there is none with this id."
  camera(id: ID!): Camera
  "Events in ascending id order, optionally of one camera and after a known event."
  events(cameraId: ID, afterId: ID, limit: Int = 50): [Event!]!
  "The user who authorized the token."
  me: User!
}

type Mutation {
  "Rename a camera; needs the write right."
  renameCamera(id: ID!, name: String!): Camera
}

type Camera {
  id: ID!
  name: String!
  serialNumber: String!
  model: String!
  online: Boolean!
  firmware: String!
  timezone: String!
  "This camera's events, oldest first."
  events(limit: Int = 50): [Event!]!
}

type Event {
  id: ID!
  cameraId: ID!
  type: String!
  "ISO 8601, UTC."
  time: String!
  camera: Camera
}

type User {
  id: ID!
  email: String!
  name: String!
  fullAccess: Boolean!
  "The rights of the token used for this request."
  scopes: [String!]!
}
'''


#: What resolvers get as ``info``: a ``graphql.GraphQLResolveInfo``, generic in graphql-core
#: 3.3 and not in 3.2 (which ariadne-codegen and gql 4.0 hold the test extra to), so no
#: one parameterised annotation type-checks under both; its ``context`` is a Context.
Info: TypeAlias = Any


@attrs.frozen
class Context:
    """What resolvers see of one request."""

    data: FakeData
    scopes: frozenset[str]


def _need(info: Info, *rights: str) -> Context:
    ctx: Context = info.context
    if not ctx.scopes.intersection(rights):
        raise graphql.GraphQLError(
            f"the token lacks the {' or '.join(repr(r) for r in rights)} right"
        )
    return ctx


def _camera_list(_: Any, info: Info) -> list[Camera]:
    return list(_need(info, "read").data.cameras.values())


def _camera(_: Any, info: Info, id: str) -> Camera | None:
    return _need(info, "read").data.cameras.get(id)


def _select(
    events: list[Event], camera_id: str | None, after_id: str | None, limit: int | None
) -> list[Event]:
    after = int(after_id) if after_id is not None and after_id.isdigit() else 0
    # Events are kept in ascending id order (FakeData.add_event): the first one after
    # ``after`` is found by bisection and the scan stops at ``limit``, so following a
    # long backlog page by page stays cheap.
    start = bisect.bisect_right(events, after, key=lambda e: int(e.id)) if after else 0
    matching = (
        e
        for e in itertools.islice(events, start, None)
        if camera_id is None or e.camera_id == camera_id
    )
    if limit is None:
        return list(matching)
    return list(itertools.islice(matching, max(limit, 0)))


def _events(
    _: Any,
    info: Info,
    cameraId: str | None = None,
    afterId: str | None = None,
    limit: int | None = 50,
) -> list[Event]:
    return _select(_need(info, "read", "events").data.events, cameraId, afterId, limit)


def _camera_events(cam: Camera, info: Info, limit: int = 50) -> list[Event]:
    return _select(info.context.data.events, cam.id, None, limit)


def _event_camera(event: Event, info: Info) -> Camera | None:
    ctx: Context = info.context
    return ctx.data.cameras.get(event.camera_id)


def _me(_: Any, info: Info) -> dict[str, Any]:
    ctx: Context = info.context
    user = ctx.data.user
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "fullAccess": user.full_access,
        "scopes": sorted(ctx.scopes),
    }


def _rename(_: Any, info: Info, id: str, name: str) -> Camera:
    ctx = _need(info, "write")
    camera = ctx.data.cameras.get(id)
    if camera is None:
        raise graphql.GraphQLError(f"no camera with id {id[:40]!r}")
    if not name.strip():
        raise graphql.GraphQLError("a camera name must not be blank")
    camera.name = name
    return camera


def _attr(name: str) -> Any:
    def resolve(obj: Any, info: Info) -> Any:
        return getattr(obj, name)

    return resolve


@functools.cache
def schema() -> graphql.GraphQLSchema:
    """The schema with its resolvers (built once, on first use)."""
    s = graphql.build_schema(SDL)

    def fields(type_name: str) -> dict[str, graphql.GraphQLField]:
        t = s.type_map[type_name]
        assert isinstance(t, graphql.GraphQLObjectType)
        return dict(t.fields)

    query, mutation = fields("Query"), fields("Mutation")
    query["cameraList"].resolve = _camera_list
    query["camera"].resolve = _camera
    query["events"].resolve = _events
    query["me"].resolve = _me
    mutation["renameCamera"].resolve = _rename
    cam = fields("Camera")
    cam["serialNumber"].resolve = _attr("serial_number")
    cam["events"].resolve = _camera_events
    event = fields("Event")
    event["cameraId"].resolve = _attr("camera_id")
    event["time"].resolve = lambda e, info: e.time.isoformat().replace("+00:00", "Z")
    event["camera"].resolve = _event_camera
    return s


@attrs.frozen
class _Prepared:
    document: graphql.DocumentNode | None
    errors: list[Any]
    #: No mutation in the document: the same request on the same data gives the same answer.
    pure: bool = True


@functools.lru_cache(maxsize=512)
def _prepare(query: str) -> _Prepared:
    """Parse and validate a query once; benchmarks send the same few queries again and again."""
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError as e:
        return _Prepared(None, [e.formatted])
    errors = graphql.validate(schema(), document)
    if errors:
        return _Prepared(None, [e.formatted for e in errors])
    pure = not any(
        isinstance(d, graphql.OperationDefinitionNode)
        and d.operation is graphql.OperationType.MUTATION
        for d in document.definitions
    )
    return _Prepared(document, [], pure)


def execute(
    data: FakeData,
    scopes: frozenset[str],
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
) -> tuple[dict[str, Any], bool]:
    """Run one GraphQL request.

    Returns the answer in the conventional ``data``/``errors`` shape, and whether it may be
    cached (the document has no mutation).
    """
    prepared = _prepare(query)
    if prepared.document is None:
        return {"errors": prepared.errors}, True
    result = graphql.execute_sync(
        schema(),
        prepared.document,
        context_value=Context(data, scopes),
        variable_values=dict(variables) if variables else None,
        operation_name=operation_name,
    )
    return cast(dict[str, Any], result.formatted), prepared.pure
