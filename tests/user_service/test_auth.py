"""Login, registration, refresh rotation and reuse detection, logout, password change, throttling, service tokens."""

import time

import pytest
from jose import jwt
from sqlalchemy import select

from microservices.common.service_auth import client_secret_for
from microservices.user_service import schemas, service
from microservices.user_service.models import AuditEntry, RefreshToken, outbox
from microservices.user_service.security import hash_secret
from tests.user_service.conftest import (
    INTERNAL_SECRET,
    PASSWORD,
    bearer,
    login,
    make_settings,
    make_user,
    service_headers,
)


async def audit_actions(app, **filters) -> list[tuple[str, bool, dict]]:
    statement = select(AuditEntry).order_by(AuditEntry.id)
    for name, value in filters.items():
        statement = statement.where(getattr(AuditEntry, name) == value)
    entries = (await app.state.test_session.scalars(statement)).all()
    return [(e.action, e.success, e.details) for e in entries]


async def test_login_by_username_answers_tokens_and_the_user(app, client, settings):
    user = await make_user(app, username="ada", email="Ada@Example.org")
    started = int(time.time())
    body = await login(client, "ada")
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["user"]["id"] == user.id
    assert body["user"]["username"] == "ada"
    assert body["user"]["email"] == "ada@example.org"
    assert body["user"]["roles"] == ["researcher"]
    assert body["user"]["is_active"] is True
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == app.state.signer.kid
    claims = jwt.get_unverified_claims(body["access_token"])
    assert set(claims) == {"sub", "username", "roles", "iat", "exp", "iss", "aud", "jti", "sid"}
    assert claims["sub"] == str(user.id)
    assert claims["username"] == "ada"
    assert claims["roles"] == ["researcher"]
    assert claims["iss"] == "federated-imputation"
    assert claims["aud"] == "federated-imputation-api"
    assert claims["exp"] - claims["iat"] == 900
    assert started <= claims["iat"] <= int(time.time())
    assert await audit_actions(app, action="auth.login", user_id=user.id) == [("auth.login", True, {})]


async def test_audit_entries_are_published_as_user_action_logged_events(app, client):
    user = await make_user(app, username="evented")
    await login(client, "evented")
    entry = await app.state.test_session.scalar(select(AuditEntry).where(AuditEntry.user_id == user.id))
    events = (await app.state.test_session.execute(select(outbox.c.topic, outbox.c.producer, outbox.c.payload))).all()
    assert ("user.action.logged", "user_service", {
        "audit_id": entry.id,
        "user_id": user.id,
        "action": "auth.login",
        "actor": "evented",
        "target_type": "user",
        "target_id": str(user.id),
        "success": True,
        "details": {},
    }) in [tuple(e) for e in events]  # fmt: skip


async def test_login_by_email_any_case_and_with_a_trailing_slash(app, client):
    await make_user(app, username="grace", email="grace@example.org")
    response = await client.post("/auth/login/", json={"username": "GRACE@example.org", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "grace"


async def test_auth_user_is_the_caller(app, client):
    user = await make_user(app, username="linus")
    token = (await login(client, "linus"))["access_token"]
    response = await client.get("/auth/user/", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == user.id
    assert response.json()["username"] == "linus"
    assert (await client.get("/auth/user")).status_code == 401


async def test_wrong_password_is_401_and_audited(app, client):
    user = await make_user(app, username="barbara")
    response = await client.post("/auth/login", json={"username": "barbara", "password": "not the password"})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_credentials", "detail": "The username or password is wrong."}
    unknown = await client.post("/auth/login", json={"username": "nobody-here", "password": "whatever-it-is"})
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_credentials"
    failures = await audit_actions(app, action="auth.login_failed")
    assert ("auth.login_failed", False, {"username": "barbara", "reason": "wrong_password"}) in failures
    assert ("auth.login_failed", False, {"username": "nobody-here", "reason": "unknown_user"}) in failures
    entry = (
        await app.state.test_session.scalars(
            select(AuditEntry).where(AuditEntry.action == "auth.login_failed", AuditEntry.target_id == str(user.id))
        )
    ).one()
    assert entry.ip_address == "127.0.0.1"
    assert entry.actor == "anonymous"


async def test_deactivated_account_cannot_log_in(app, client):
    await make_user(app, username="gone", is_active=False)
    response = await client.post("/auth/login", json={"username": "gone", "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["error"] == "account_inactive"


@pytest.mark.parametrize(
    "payload",
    [{"username": "x"}, {"password": "y"}, {"username": "", "password": "y"}, {"username": ["a"], "password": "y"}],
)
async def test_malformed_login_is_422(client, payload):
    response = await client.post("/auth/login", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_failed_logins_per_account_are_throttled_with_retry_after(app, client, redis):
    user = await make_user(app, username="target")
    try:
        for _ in range(5):
            wrong = await client.post("/auth/login", json={"username": "target", "password": "wrong password"})
            assert wrong.status_code == 401
        refused = await client.post("/auth/login", json={"username": "target", "password": PASSWORD})
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert refused.json()["detail"].startswith("Too many failed logins for this account; try again in ")
        assert 890 <= int(refused.headers["retry-after"]) <= 900
        throttled = await audit_actions(app, action="auth.login_throttled")
        assert throttled == [("auth.login_throttled", False, {"username": "target", "throttled": "account"})]
        # By e-mail it is the same account.
        by_email = await client.post("/auth/login", json={"username": "target@example.org", "password": PASSWORD})
        assert by_email.status_code == 429
    finally:
        await redis.delete(f"login:failures:account:user:{user.id}")
    assert (await client.post("/auth/login", json={"username": "target", "password": PASSWORD})).status_code == 200


async def test_failed_logins_per_address_are_throttled(app, client, redis, settings):
    app.state.settings.login_max_failures_per_address = 3
    try:
        for n in range(3):
            wrong = await client.post("/auth/login", json={"username": f"someone{n}", "password": "wrong password"})
            assert wrong.status_code == 401
        await make_user(app, username="innocent")
        refused = await client.post("/auth/login", json={"username": "innocent", "password": PASSWORD})
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith("Too many failed logins for this address")
        assert int(refused.headers["retry-after"]) > 0
    finally:
        app.state.settings.login_max_failures_per_address = 20
        for n in range(3):
            await redis.delete(f"login:failures:account:name:someone{n}")


async def test_a_successful_login_forgets_the_accounts_failures(app, client, redis):
    user = await make_user(app, username="forgetful")
    for _ in range(4):
        await client.post("/auth/login", json={"username": "forgetful", "password": "wrong password"})
    assert int(await redis.get(f"login:failures:account:user:{user.id}")) == 4
    await login(client, "forgetful")
    assert await redis.get(f"login:failures:account:user:{user.id}") is None


async def test_register_creates_a_researcher_who_can_log_in(app, client):
    response = await client.post(
        "/auth/register/",
        json={"username": "newbie", "email": "NewBie@Example.org", "password": "a long passphrase", "first_name": "N"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "newbie"
    assert body["email"] == "newbie@example.org"
    assert body["roles"] == ["researcher"]
    assert body["first_name"] == "N"
    assert "password" not in str(body)
    assert (await login(client, "newbie", "a long passphrase"))["user"]["id"] == body["id"]
    assert await audit_actions(app, action="auth.register", user_id=body["id"]) == [("auth.register", True, {})]


async def test_register_refuses_duplicates_weak_passwords_and_malformed_input(app, client):
    await make_user(app, username="taken", email="taken@example.org")
    same_name = await client.post(
        "/auth/register", json={"username": "TAKEN", "email": "other@example.org", "password": "a long passphrase"}
    )
    assert same_name.status_code == 409
    assert same_name.json() == {"error": "username_taken", "detail": "The username 'TAKEN' is taken."}
    same_email = await client.post(
        "/auth/register", json={"username": "other", "email": "Taken@example.org", "password": "a long passphrase"}
    )
    assert same_email.status_code == 409
    assert same_email.json()["error"] == "email_taken"
    weak = await client.post(
        "/auth/register", json={"username": "weakling", "email": "w@example.org", "password": "12345678901"}
    )
    assert weak.status_code == 400
    assert weak.json() == {"error": "weak_password", "detail": "The password must not be only digits."}
    bad_email = await client.post(
        "/auth/register", json={"username": "bademail", "email": "not-an-address", "password": "a long passphrase"}
    )
    assert bad_email.status_code == 422
    bad_name = await client.post(
        "/auth/register", json={"username": "has space", "email": "s@example.org", "password": "a long passphrase"}
    )
    assert bad_name.status_code == 422


async def test_a_username_may_not_contain_an_at_sign(client):
    response = await client.post(
        "/auth/register",
        json={"username": "victim@example.org", "email": "mallory@example.org", "password": "a long passphrase"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert [e["msg"] for e in response.json()["errors"]] == [
        "Value error, A username may not contain '@', which marks an e-mail address at login."
    ]


async def test_a_login_with_an_at_sign_is_an_e_mail_address_and_never_a_username(app, client):
    # An account from before '@' was refused in usernames, created first so that it would be found first.
    impostor = schemas.RegisterRequest.model_construct(
        username="victim@example.org",
        email="mallory@example.org",
        password="mallory's passphrase",
        first_name="",
        last_name="",
    )
    await service.create_user(
        session=app.state.test_session, passwords=app.state.passwords, user_in=impostor, roles=("researcher",)
    )
    victim = await make_user(app, username="victim", email="victim@example.org")
    by_email = await client.post("/auth/login", json={"username": "Victim@example.org", "password": PASSWORD})
    assert by_email.status_code == 200
    assert by_email.json()["user"]["id"] == victim.id
    as_impostor = await client.post(
        "/auth/login", json={"username": "victim@example.org", "password": "mallory's passphrase"}
    )
    assert as_impostor.status_code == 401
    by_name = await client.post("/auth/login", json={"username": "VICTIM", "password": PASSWORD})
    assert by_name.json()["user"]["id"] == victim.id


async def test_registration_can_be_switched_off(databases, signing_pem, fernet_key, tmp_path, redis):
    from microservices.user_service.main import build_app
    from tests.harness import app_client

    closed = build_app(make_settings(signing_pem, fernet_key, tmp_path, registration_enabled=False))
    async with app_client(closed) as client:
        response = await client.post(
            "/auth/register", json={"username": "late", "email": "late@example.org", "password": "a long passphrase"}
        )
    assert response.status_code == 403
    assert response.json() == {
        "error": "registration_disabled",
        "detail": "Registration is closed; ask an administrator for an account.",
    }


async def test_refresh_rotates_and_the_new_tokens_work(app, client):
    await make_user(app, username="rotor")
    first = await login(client, "rotor")
    response = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old_claims = jwt.get_unverified_claims(first["access_token"])
    new_claims = jwt.get_unverified_claims(second["access_token"])
    assert new_claims["sid"] == old_claims["sid"]
    assert (await client.get("/auth/user", headers=bearer(second["access_token"]))).status_code == 200
    third = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


async def test_reusing_a_refresh_token_revokes_the_whole_family(app, client):
    user = await make_user(app, username="victim")
    first = await login(client, "victim")
    second = (await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    other_session = await login(client, "victim")
    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["error"] == "refresh_token_reused"
    # The thief's (or the victim's) newer token of that family is dead too...
    after = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    assert after.json()["error"] == "refresh_token_revoked"
    # ...and so are the access tokens, while another session goes on with its refresh token.
    assert (await client.get("/auth/user", headers=bearer(second["access_token"]))).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    ).status_code == 200
    assert await audit_actions(app, action="auth.refresh_reuse", user_id=user.id) == [
        ("auth.refresh_reuse", False, {"family_revoked": 2})
    ]


async def test_unknown_and_expired_refresh_tokens_are_refused(app, client):
    await make_user(app, username="expiring")
    body = await login(client, "expiring")
    unknown = await client.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_refresh_token"
    row = await app.state.test_session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(body["refresh_token"]))
    )
    row.expires_at = row.created_at
    await app.state.test_session.flush()
    expired = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert expired.status_code == 401
    assert expired.json()["error"] == "refresh_token_expired"
    # The next login clears the user's expired refresh tokens away.
    await login(client, "expiring")
    remaining = await app.state.test_session.scalars(select(RefreshToken).where(RefreshToken.user_id == row.user_id))
    assert [r.token_hash == hash_secret(body["refresh_token"]) for r in remaining] == [False]


async def test_logout_ends_the_session_and_its_access_token(app, client):
    await make_user(app, username="leaver")
    body = await login(client, "leaver")
    response = await client.post(
        "/auth/logout/", json={"refresh_token": body["refresh_token"]}, headers=bearer(body["access_token"])
    )
    assert response.status_code == 204
    assert (await client.get("/auth/user", headers=bearer(body["access_token"]))).status_code == 401
    refused = await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refused.status_code == 401
    assert refused.json()["error"] == "refresh_token_revoked"
    # Logging in again works at once.
    again = await login(client, "leaver")
    assert (await client.get("/auth/user", headers=bearer(again["access_token"]))).status_code == 200


async def test_logout_with_only_the_access_token_ends_that_session(app, client):
    await make_user(app, username="tokenonly")
    body = await login(client, "tokenonly")
    assert (await client.post("/auth/logout", headers=bearer(body["access_token"]))).status_code == 204
    assert (await client.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})).status_code == 401
    nothing = await client.post("/auth/logout")
    assert nothing.status_code == 401


async def test_password_change_ends_other_sessions_and_answers_new_tokens(app, client):
    await make_user(app, username="changer")
    old = await login(client, "changer")
    wrong = await client.post(
        "/auth/password",
        json={"current_password": "not it at all", "new_password": "another long phrase"},
        headers=bearer(old["access_token"]),
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_current_password"
    weak = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(old["access_token"]),
    )
    assert weak.status_code == 400
    assert weak.json()["error"] == "weak_password"
    response = await client.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "another long phrase"},
        headers=bearer(old["access_token"]),
    )
    assert response.status_code == 200
    fresh = response.json()
    assert (await client.get("/auth/user", headers=bearer(old["access_token"]))).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})).status_code == 401
    assert (await client.get("/auth/user", headers=bearer(fresh["access_token"]))).status_code == 200
    bad_old = await client.post("/auth/login", json={"username": "changer", "password": PASSWORD})
    assert bad_old.status_code == 401
    await login(client, "changer", "another long phrase")


async def test_client_credentials_grant_issues_an_internal_token(app, client):
    response = await client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "django",
            "client_secret": client_secret_for(INTERNAL_SECRET, "django"),
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["sub"] == "service:django"
    assert claims["aud"] == "federated-imputation-internal"
    assert claims["roles"] == []
    principal = await app.state.token_verifier.verify(body["access_token"])
    assert principal.is_service is True


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"grant_type": "client_credentials", "client_id": "django", "client_secret": "wrong"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "intruder", "client_secret": INTERNAL_SECRET},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password", "client_id": "django", "client_secret": INTERNAL_SECRET},
            400,
            "unsupported_grant_type",
        ),
        ({"grant_type": "client_credentials", "client_id": "django"}, 422, "validation_error"),
    ],
)
async def test_client_credentials_failures(client, data, status, code):
    response = await client.post("/auth/token", data=data)
    assert response.status_code == status
    assert response.json()["error"] == code


async def test_each_client_has_its_own_secret_and_the_shared_one_opens_none(client):
    job_processor = {"grant_type": "client_credentials", "client_id": "job_processor"}
    shared = await client.post("/auth/token", data={**job_processor, "client_secret": INTERNAL_SECRET})
    gateways = await client.post(
        "/auth/token", data={**job_processor, "client_secret": client_secret_for(INTERNAL_SECRET, "gateway")}
    )
    own = await client.post(
        "/auth/token", data={**job_processor, "client_secret": client_secret_for(INTERNAL_SECRET, "job_processor")}
    )
    assert (shared.status_code, shared.json()["error"]) == (401, "invalid_client")
    assert (gateways.status_code, gateways.json()["error"]) == (401, "invalid_client")
    assert own.status_code == 200
    assert jwt.get_unverified_claims(own.json()["access_token"])["sub"] == "service:job_processor"
    assert client_secret_for("s", "job_processor") == (
        "9490406486e6885503c80011123b52477e08b7bc540d5e922ab9addb45e1efbe"
    )


async def test_per_client_secrets_override_the_shared_one(databases, signing_pem, fernet_key, tmp_path, redis):
    from pydantic import SecretStr

    from microservices.user_service.main import build_app
    from tests.harness import app_client

    settings = make_settings(
        signing_pem, fernet_key, tmp_path, client_secrets=SecretStr('{"django": "django-only-secret"}')
    )
    async with app_client(build_app(settings)) as client:
        shared = await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "client_id": "django", "client_secret": INTERNAL_SECRET},
        )
        own = await client.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "client_id": "django", "client_secret": "django-only-secret"},
        )
        other = await service_headers(client, "gateway")
    assert shared.status_code == 401
    assert own.status_code == 200
    assert other["Authorization"].startswith("Bearer ")


async def test_jwks_publishes_the_signing_key_and_tokens_verify_with_it(app, client):
    await make_user(app, username="verified")
    token = (await login(client, "verified"))["access_token"]
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == {"keys": [app.state.signer.jwk]}
    assert response.headers["cache-control"] == "public, max-age=300"
    from microservices.common.auth import TokenVerifier

    verifier = TokenVerifier(
        issuer="federated-imputation",
        audiences=["federated-imputation-api"],
        internal_audience="federated-imputation-internal",
    )
    verifier.set_jwks(response.json())
    assert (await verifier.verify(token)).username == "verified"


async def test_a_refused_login_is_audited_even_though_the_request_fails(databases, settings, redis):
    """Outside the rolled-back test transaction: the failure's audit entry is really committed."""
    from sqlalchemy import delete

    from microservices.user_service.main import build_app
    from tests.harness import app_client

    app = build_app(settings)
    marker = f"ghost-{time.time_ns()}"
    async with app_client(app, rollback=False) as client:
        response = await client.post("/auth/login", json={"username": marker, "password": "wrong password"})
        assert response.status_code == 401
        async with app.state.database.sessionmaker() as session, session.begin():
            entries = (
                await session.scalars(select(AuditEntry).where(AuditEntry.details["username"].astext == marker))
            ).all()
            assert [(e.action, e.success, e.details["reason"]) for e in entries] == [
                ("auth.login_failed", False, "unknown_user")
            ]
            await session.execute(delete(AuditEntry).where(AuditEntry.id == entries[0].id))
            await session.execute(delete(outbox).where(outbox.c.payload["audit_id"].astext == str(entries[0].id)))
    await redis.delete(f"login:failures:account:name:{marker}")
