"""The common RemoteIntrospector: how every other service resolves a personal API token, against the real app."""

import httpx
import pytest

from microservices.common.auth import RemoteIntrospector
from microservices.common.errors import ServiceUnavailable, Unauthorized
from microservices.common.service_auth import ServiceTokenProvider, client_secret_for
from tests.user_service.conftest import INTERNAL_SECRET, make_user, user_headers


def introspector_on(
    client, *, cache_s: float, secret: str = client_secret_for(INTERNAL_SECRET, "file_manager")
) -> RemoteIntrospector:
    tokens = ServiceTokenProvider(
        http=client, token_url="http://test/auth/token", client_id="file_manager", client_secret=secret
    )
    return RemoteIntrospector(http=client, url="http://test/auth/introspect", service_tokens=tokens, cache_s=cache_s)


async def test_an_api_token_resolves_to_its_owner_and_stops_once_revoked(app, client):
    user = await make_user(app, username="remote-owner", roles=("researcher", "service_admin"))
    owner_login = await client.post(
        "/auth/login", json={"username": "remote-owner", "password": "correct horse battery"}
    )
    owner = {"Authorization": f"Bearer {owner_login.json()['access_token']}"}
    created = (await client.post("/tokens", json={"name": "pipeline"}, headers=owner)).json()
    introspector = introspector_on(client, cache_s=0)
    principal = await introspector(created["token"])
    assert principal.subject == str(user.id)
    assert principal.user_id == user.id
    assert principal.username == "remote-owner"
    assert principal.roles == frozenset({"researcher", "service_admin"})
    assert principal.token_id == f"api:{created['id']}"
    assert principal.is_service is False
    await client.delete(f"/tokens/{created['id']}", headers=owner)
    with pytest.raises(Unauthorized) as caught:
        await introspector(created["token"])
    assert caught.value.code == "invalid_token"


async def test_answers_are_cached_for_a_while(app, client):
    headers = await user_headers(app, client, "remote-cached")
    created = (await client.post("/tokens", json={"name": "cached"}, headers=headers)).json()
    introspector = introspector_on(client, cache_s=60)
    assert (await introspector(created["token"])).username == "remote-cached"
    await client.delete(f"/tokens/{created['id']}", headers=headers)
    # Still the cached answer: the gateway, which checks every call, has refused the token already.
    assert (await introspector(created["token"])).username == "remote-cached"


async def test_a_component_with_the_wrong_secret_gets_service_unavailable(app, client):
    introspector = introspector_on(client, cache_s=0, secret="not the secret")
    with pytest.raises(ServiceUnavailable):
        await introspector("fip_whatever")


async def test_a_token_that_is_neither_a_jwt_nor_an_api_token_costs_no_call():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        introspector = RemoteIntrospector(http=http, url="http://users/auth/introspect", service_tokens=None)
        with pytest.raises(Unauthorized) as caught:
            await introspector("opaque-garbage")
    assert caught.value.code == "invalid_token"
    assert calls == []


async def test_a_component_presents_the_secret_derived_for_it_unless_it_sets_its_own(client, monkeypatch):
    from jose import jwt
    from pydantic import SecretStr

    from microservices.file_manager.config import Settings as FileManagerSettings

    monkeypatch.delenv("FILE_MANAGER_INTERNAL_CLIENT_SECRET", raising=False)
    shared = FileManagerSettings(internal_client_secret=SecretStr(INTERNAL_SECRET), user_service_url="http://test")
    derived = ServiceTokenProvider.from_settings(shared, client)
    claims = jwt.get_unverified_claims(await derived.token())
    assert claims["sub"] == "service:file_manager"

    monkeypatch.setenv("FILE_MANAGER_INTERNAL_CLIENT_SECRET", "its-own-secret")
    own = ServiceTokenProvider.from_settings(FileManagerSettings(user_service_url="http://test"), client)
    with pytest.raises(ServiceUnavailable, match=r"refused this component's credentials \(HTTP 401\)"):
        await own.token()
