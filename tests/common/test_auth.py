"""Local token verification: signature, algorithm, issuer, audience, expiry, key rotation, roles."""

import base64
import json

import httpx
import pytest
from fastapi import APIRouter

from microservices.common.app import create_app
from microservices.common.auth import AdminPrincipal, CurrentPrincipal, TokenVerifier
from microservices.common.errors import Unauthorized
from microservices.monitoring.config import Settings
from tests.harness import TokenFactory, app_client


def verifier_for(tokens: TokenFactory, **kwargs) -> TokenVerifier:
    verifier = TokenVerifier(
        issuer="federated-imputation",
        audiences=["federated-imputation-api"],
        internal_audience="federated-imputation-internal",
        **kwargs,
    )
    verifier.set_jwks(tokens.jwks)
    return verifier


async def test_valid_token_gives_its_principal(tokens):
    principal = await verifier_for(tokens).verify(tokens.token("42", username="bob", roles=["admin"]))
    assert principal.subject == "42"
    assert principal.user_id == 42
    assert principal.username == "bob"
    assert principal.roles == frozenset({"admin"})
    assert principal.is_service is False
    assert principal.is_admin


async def test_internal_audience_marks_a_service_account(tokens):
    token = tokens.token("svc-django", roles=[], audience="federated-imputation-internal")
    principal = await verifier_for(tokens).verify(token)
    assert principal.is_service is True
    assert principal.user_id is None


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda t: t.token(expires_in_s=-10), "token_expired"),
        (lambda t: t.token(audience="someone-else"), "invalid_audience"),
        (lambda t: t.token(iss="evil"), "invalid_token"),
        (lambda t: "not.a.jwt", "invalid_token"),
        (lambda t: TokenFactory().token(), "invalid_token"),  # signed by a key we do not know
    ],
)
async def test_bad_tokens_are_refused_with_a_stable_code(tokens, make, code):
    with pytest.raises(Unauthorized) as caught:
        await verifier_for(tokens).verify(make(tokens))
    assert caught.value.code == code
    assert caught.value.status_code == 401


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_is_refused(tokens):
    good = tokens.token()
    payload = good.split(".")[1]
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': tokens.kid})}.{payload}."
    with pytest.raises(Unauthorized) as caught:
        await verifier_for(tokens).verify(forged)
    assert caught.value.code == "invalid_token"


async def test_tampered_payload_is_refused(tokens):
    header, _, signature = tokens.token(roles=["researcher"]).split(".")
    claims = json.loads(base64.urlsafe_b64decode(tokens.token().split(".")[1] + "=="))
    claims["roles"] = ["admin"]
    with pytest.raises(Unauthorized):
        await verifier_for(tokens).verify(f"{header}.{_b64(claims)}.{signature}")


async def test_unknown_key_id_fetches_the_jwks_again_once():
    old, new = TokenFactory(), TokenFactory()
    fetches = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetches.append(request.url.path)
        return httpx.Response(200, json={"keys": [old.public_jwk, new.public_jwk]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        verifier = verifier_for(old, jwks_url="http://users/.well-known/jwks.json", http=http)
        assert (await verifier.verify(new.token("7"))).subject == "7"
        assert fetches == ["/.well-known/jwks.json"]
        # Made-up key ids do not turn into a fetch each.
        with pytest.raises(Unauthorized):
            await verifier.verify(TokenFactory().token())
        assert len(fetches) == 1


router = APIRouter()


@router.get("/me")
async def me(principal: CurrentPrincipal) -> dict:
    return {"sub": principal.subject, "roles": sorted(principal.roles)}


@router.get("/admin-only")
async def admin_only(principal: AdminPrincipal) -> dict:
    return {"ok": True}


@pytest.fixture
async def client(databases, tokens):
    app = create_app(settings=Settings(), title="t", description="t", routers=[router])
    async with app_client(app, tokens=tokens) as c:
        yield c


async def test_endpoint_without_token_is_401_with_bearer_challenge(client):
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "not_authenticated"


async def test_endpoint_with_token_sees_the_caller(client, tokens):
    response = await client.get("/me", headers=tokens.headers(sub="9", roles=["researcher"]))
    assert response.json() == {"sub": "9", "roles": ["researcher"]}


async def test_role_check_is_403_for_the_wrong_role_and_200_for_the_right_one(client, tokens):
    assert (await client.get("/admin-only", headers=tokens.headers(roles=["researcher"]))).status_code == 403
    assert (await client.get("/admin-only", headers=tokens.headers(roles=["admin"]))).status_code == 200


async def test_token_issued_before_the_subjects_revocation_time_is_refused(client, tokens, databases):
    import time

    from redis.asyncio import Redis

    redis = Redis.from_url(databases.infra.redis_url)
    try:
        old = tokens.headers(sub="77", iat=int(time.time()) - 60)
        await redis.set("auth:revoked_before:77", int(time.time()) - 30, ex=60)
        refused = await client.get("/me", headers=old)
        assert refused.status_code == 401
        assert refused.json()["error"] == "token_revoked"
        assert (await client.get("/me", headers=tokens.headers(sub="77"))).status_code == 200
    finally:
        await redis.delete("auth:revoked_before:77")
        await redis.aclose()
