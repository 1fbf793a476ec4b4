# test_cameras.py
import pytest

from netrex_async import NetrexClient, ReauthorizationRequired
from netrex_async.testing import FakeNetrex, Fault


async def online_camera_names(client: NetrexClient) -> list[str]:
    """The code under test: the names of the cameras that are online."""
    data = await client.graphql("{cameraList{name online}}")
    return [camera["name"] for camera in data["cameraList"] if camera["online"]]


@pytest.mark.asyncio
async def test_online_cameras(netrex_client: NetrexClient) -> None:
    # The fake serves three sample cameras; "Warehouse" is offline.
    assert await online_camera_names(netrex_client) == ["Entrance", "Parking lot"]


@pytest.mark.asyncio
async def test_outage_and_expired_token(
    fake_netrex: FakeNetrex, netrex_client: NetrexClient
) -> None:
    fake_netrex.add_camera("Garden")
    fake_netrex.expire_all()  # the provider forgets every access token...
    fake_netrex.inject("graphql", Fault.status(503))  # ...and has a hiccup
    names = await online_camera_names(netrex_client)
    assert names == ["Entrance", "Parking lot", "Garden"]
    assert fake_netrex.counters.refreshes == 1  # the client refreshed once, by itself


@pytest.mark.asyncio
async def test_with_a_user_token(fake_netrex: FakeNetrex) -> None:
    token = fake_netrex.issue_token(scopes="read")
    async with NetrexClient(token.access_token, provider=fake_netrex.provider) as client:
        assert "Warehouse" not in await online_camera_names(client)
    fake_netrex.revoke_grant(token)  # the user deleted the token in the web UI
    async with NetrexClient(token.access_token, provider=fake_netrex.provider) as client:
        with pytest.raises(ReauthorizationRequired):
            await online_camera_names(client)
