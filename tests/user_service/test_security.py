"""Password hashing and policy, the signing key (generated, reused, required in production), JWKS, Fernet."""

import base64
import hashlib
import json

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from jose import jwt
from pydantic import SecretStr

from microservices.common.auth import TokenVerifier
from microservices.user_service.config import Settings
from microservices.user_service.security import (
    KeyConfigurationError,
    TokenSigner,
    make_fernet,
    password_context,
)
from microservices.user_service.service import WeakPassword, check_password_policy
from tests.user_service.conftest import private_pem


def test_argon2_hashes_and_verifies_with_the_production_cost():
    passwords = password_context(Settings(_env_file=None))
    hashed = passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert passwords.verify("correct horse battery", hashed) is True
    assert passwords.verify("correct horse batterY", hashed) is False


def test_a_hash_made_with_a_lower_cost_verifies_and_asks_for_an_upgrade():
    cheap = password_context(Settings(password_hash_memory_kib=1024, password_hash_time_cost=1))
    strong = password_context(Settings())
    hashed = cheap.hash("correct horse battery")
    assert strong.verify("correct horse battery", hashed) is True
    assert strong.needs_update(hashed) is True
    assert strong.needs_update(strong.hash("x" * 12)) is False


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1!", "The password must be at least 10 characters long."),
        ("1234567890123", "The password must not be only digits."),
        ("Researcher01", "The password must not be the username or the e-mail address."),
        ("ada@example.org", "The password must not be the username or the e-mail address."),
        ("aaaaaaaaaaaa", "The password is too easy to guess; choose a longer, less common one."),
        ("password123", "The password is too easy to guess; choose a longer, less common one."),
    ],
)
def test_password_policy_refuses_with_a_sentence(password, message):
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password=password, username="researcher01", email="ada@example.org")
    assert caught.value.message == message
    assert caught.value.status_code == 400
    assert caught.value.code == "weak_password"


def test_password_policy_accepts_a_reasonable_password():
    check_password_policy(password="correct horse battery", username="researcher01", email="ada@example.org")


def _thumbprint(jwk: dict) -> str:
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def test_development_key_is_generated_once_into_var_dir_and_reused(tmp_path):
    settings = Settings(environment="development", var_dir=tmp_path)
    first = TokenSigner.from_settings(settings)
    key_file = tmp_path / "jwt-private.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    second = TokenSigner.from_settings(settings)
    assert second.kid == first.kid
    assert first.kid == _thumbprint(first.jwk)
    assert first.jwks == {"keys": [{**first.jwk, "use": "sig", "alg": "RS256"}]}


# Production refuses to start without a dedicated secret for each reader of users' external credentials.
READER_SECRETS = SecretStr('{"job_processor": "a-dedicated-job-processor-secret"}')


def test_production_without_a_signing_key_refuses_to_start(tmp_path):
    settings = Settings(
        environment="production",
        var_dir=tmp_path,
        fernet_key=SecretStr(Fernet.generate_key().decode()),
        client_secrets=READER_SECRETS,
    )
    with pytest.raises(KeyConfigurationError, match="USER_SERVICE_JWT_PRIVATE_KEY"):
        TokenSigner.from_settings(settings)
    assert not (tmp_path / "jwt-private.pem").exists()


def test_key_file_setting_is_read(tmp_path):
    pem = private_pem()
    (tmp_path / "key.pem").write_text(pem)
    signer = TokenSigner.from_settings(
        Settings(environment="production", jwt_private_key_file=tmp_path / "key.pem", client_secrets=READER_SECRETS)
    )
    assert signer.kid == TokenSigner(pem.encode()).kid


def test_unreadable_key_is_a_clear_startup_error(tmp_path):
    with pytest.raises(KeyConfigurationError, match="not a readable PEM"):
        TokenSigner(b"not a key")
    with pytest.raises(KeyConfigurationError, match="cannot be read"):
        TokenSigner.from_settings(Settings(jwt_private_key_file=tmp_path / "missing.pem"))


async def test_tokens_of_the_previous_key_verify_while_it_is_published():
    old_pem, new_pem = private_pem(), private_pem()
    old = TokenSigner(old_pem.encode())
    old_public = serialization.load_pem_private_key(old_pem.encode(), None).public_key()
    previous_public_pem = old_public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    new = TokenSigner(new_pem.encode(), previous_public_pem=previous_public_pem)
    assert [k["kid"] for k in new.jwks["keys"]] == [new.kid, old.kid]
    claims = {"sub": "5", "iss": "federated-imputation", "aud": "federated-imputation-api", "roles": []}
    old_token = old.sign(claims, ttl_s=60).token
    assert jwt.get_unverified_header(old_token)["kid"] == old.kid
    verifier = TokenVerifier(
        issuer="federated-imputation", audiences=["federated-imputation-api"], internal_audience="internal"
    )
    verifier.set_jwks(new.jwks)
    assert (await verifier.verify(old_token)).subject == "5"
    assert (await verifier.verify(new.sign(claims, ttl_s=60).token)).subject == "5"


def test_fernet_key_rotation_and_production_requirement(tmp_path):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ciphertext = make_fernet(Settings(fernet_key=SecretStr(old_key))).encrypt(b"michigan-token")
    rotated = make_fernet(Settings(fernet_key=SecretStr(f"{new_key},{old_key}")))
    assert rotated.decrypt(ciphertext) == b"michigan-token"
    with pytest.raises(KeyConfigurationError, match="FERNET_KEY"):
        make_fernet(
            Settings(environment="production", var_dir=tmp_path, fernet_key=None, client_secrets=READER_SECRETS)
        )
    with pytest.raises(KeyConfigurationError, match="not a valid Fernet key"):
        make_fernet(Settings(fernet_key=SecretStr("not-a-key")))


def test_a_key_from_a_one_line_env_value_is_read_with_its_escaped_line_breaks():
    pem = private_pem()
    one_line = pem.replace("\n", "\\n")
    signer = TokenSigner.from_settings(
        Settings(environment="production", jwt_private_key=SecretStr(one_line), client_secrets=READER_SECRETS)
    )
    assert signer.kid == TokenSigner(pem.encode()).kid


async def test_an_unusable_key_in_the_jwks_is_skipped_and_the_others_still_verify():
    signer = TokenSigner(private_pem().encode())
    verifier = TokenVerifier(
        issuer="federated-imputation", audiences=["federated-imputation-api"], internal_audience="internal"
    )
    verifier.set_jwks({"keys": [{"kid": "broken", "kty": "RSA", "n": "!!", "e": "AQAB"}, signer.jwk]})
    claims = {"sub": "8", "iss": "federated-imputation", "aud": "federated-imputation-api", "roles": []}
    assert (await verifier.verify(signer.sign(claims, ttl_s=60).token)).subject == "8"


def test_the_service_process_refuses_to_start_in_production_without_a_key(tmp_path):
    import os
    import subprocess
    import sys

    # Only what the process needs, so that no variable of the surrounding environment decides the outcome.
    env = {
        "PATH": os.environ["PATH"],
        "ENVIRONMENT": "production",
        "VAR_DIR": str(tmp_path),
        "FERNET_KEY": Fernet.generate_key().decode(),
        "USER_SERVICE_CLIENT_SECRETS": READER_SECRETS.get_secret_value(),
    }
    result = subprocess.run(
        [sys.executable, "-m", "microservices.user_service"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "user service: Set USER_SERVICE_JWT_PRIVATE_KEY or USER_SERVICE_JWT_PRIVATE_KEY_FILE: "
        "production needs a signing key."
    )
    assert list(tmp_path.iterdir()) == []


def test_production_refuses_to_start_without_a_dedicated_secret_for_a_credential_reader(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        "PATH": os.environ["PATH"],
        "ENVIRONMENT": "production",
        "VAR_DIR": str(tmp_path),
        "FERNET_KEY": Fernet.generate_key().decode(),
        "INTERNAL_CLIENT_SECRET": "a-long-random-shared-secret",
        "USER_SERVICE_JWT_PRIVATE_KEY": private_pem().replace("\n", "\\n"),
        "USER_SERVICE_CLIENT_SECRETS": '{"django": "a-dedicated-django-secret"}',
    }
    result = subprocess.run(
        [sys.executable, "-m", "microservices.user_service"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "user service: USER_SERVICE_CLIENT_SECRETS has no secret for job_processor: in production every client in "
        "USER_SERVICE_CREDENTIAL_READER_CLIENTS needs its own dedicated secret"
    )
    assert list(tmp_path.iterdir()) == []
