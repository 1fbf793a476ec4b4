"""The content the fake's API serves: cameras, events and the user, all in memory."""

from __future__ import annotations

import datetime as dt
import itertools

import attrs

__all__ = ["Camera", "Event", "FakeData", "User", "edits"]

#: Assignments to any camera, user or data field so far (lets caches notice edits).
_EDITS = 0


def _edited(instance: object, attribute: attrs.Attribute[object], value: object) -> object:
    global _EDITS
    _EDITS += 1
    return value


def edits() -> int:
    """How many field assignments cameras, users and data have seen in this process."""
    return _EDITS


@attrs.define(eq=False, on_setattr=_edited)
class Camera:
    """A camera in the fake's data; change its fields freely in a test."""

    id: str
    name: str
    serial_number: str
    model: str = "AXIS M3086-V"
    online: bool = True
    firmware: str = "11.11.73"
    timezone: str = "Europe/Prague"


@attrs.frozen
class Event:
    """A camera event (motion, tampering...) in the fake's data."""

    id: str
    camera_id: str
    type: str
    time: dt.datetime


@attrs.define(on_setattr=_edited)
class User:
    """The account the fake's tokens act for."""

    id: str = "1"
    email: str = "owner@example.com"
    name: str = "Fake Owner"
    full_access: bool = True


_EPOCH = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


@attrs.define(on_setattr=_edited)
class FakeData:
    """The in-memory content one fake serves: cameras, events and the user."""

    cameras: dict[str, Camera] = attrs.field(factory=dict)
    events: list[Event] = attrs.field(factory=list)
    user: User = attrs.field(factory=User)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _event_ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    #: Bumped by every change made through this class (see :meth:`touch`).
    version: int = 0

    def touch(self) -> None:
        """Note a change made behind this class's back (e.g. to ``cameras`` directly).

        Only needed with ``FakeNetrex(cache_results=True)``, to drop cached answers.
        """
        self.version += 1

    @property
    def stamp(self) -> tuple[int, int, int, int]:
        """Changes whenever the served content may have changed."""
        return (_EDITS, self.version, len(self.cameras), len(self.events))

    @classmethod
    def sample(cls) -> FakeData:
        """Three cameras (one offline) and a few events, the same every time."""
        data = cls()
        entrance = data.add_camera("Entrance", serial_number="B8A44F3C0001")
        parking = data.add_camera(
            "Parking lot", serial_number="B8A44F3C0002", model="AXIS Q1656-LE"
        )
        data.add_camera(
            "Warehouse", serial_number="B8A44F3C0003", model="AXIS P3265-LVE", online=False
        )
        for minutes, cam, kind in [
            (0, entrance, "motion"),
            (7, parking, "motion"),
            (12, entrance, "tampering"),
            (30, parking, "line_crossing"),
        ]:
            data.add_event(cam.id, kind, time=_EPOCH + dt.timedelta(minutes=minutes))
        return data

    def add_camera(
        self,
        name: str,
        *,
        serial_number: str | None = None,
        model: str = "AXIS M3086-V",
        online: bool = True,
        id: str | None = None,
    ) -> Camera:
        """Add a camera and return it (ids are "1", "2"... unless given)."""
        cam_id = id if id is not None else str(next(self._ids))
        while id is None and cam_id in self.cameras:
            cam_id = str(next(self._ids))
        if cam_id in self.cameras:
            raise ValueError(f"a camera with id {cam_id!r} exists already")
        serial = serial_number or f"B8A44F{int(cam_id) if cam_id.isdigit() else 0:06X}"
        camera = Camera(id=cam_id, name=name, serial_number=serial, model=model, online=online)
        self.cameras[cam_id] = camera
        self.version += 1
        return camera

    def add_event(
        self, camera_id: str, type: str = "motion", *, time: dt.datetime | None = None
    ) -> Event:
        """Record an event of a known camera (now, unless ``time`` is given)."""
        if camera_id not in self.cameras:
            raise ValueError(f"no camera with id {camera_id!r}")
        event = Event(
            id=str(next(self._event_ids)),
            camera_id=camera_id,
            type=type,
            time=time or dt.datetime.now(dt.UTC),
        )
        self.events.append(event)
        self.version += 1
        return event
