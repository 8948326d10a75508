"""Access and refresh tokens: forged, confused, expired, revoked or of the wrong type are refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from tests.admin.conftest import JWT_SECRET, PASSWORD, auth, bearer, make_user, sign_in


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict, claims: dict, key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def root(runtime):
    return make_user(runtime, "root", ("admin", None))


def _claims_of(token: str) -> dict:
    return jwt.decode(token, JWT_SECRET, algorithms=["HS256"])


def test_a_signed_in_admin_reads_the_api(client, root):
    me = client.get("/api/v1/me", headers=auth(client, "root"))
    assert me.status_code == 200 and me.json()["username"] == "root"


def test_tampered_token_is_refused(client, root):
    token = sign_in(client, "root")["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "999"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert client.get("/api/v1/me", headers=bearer(forged)).status_code == 401
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert client.get("/api/v1/me", headers=bearer(flipped)).status_code == 401


def test_alg_none_is_refused(client, root):
    claims = _claims_of(sign_in(client, "root")["access_token"])
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
    assert client.get("/api/v1/me", headers=bearer(unsigned)).status_code == 401


PUBLIC_PEM = (b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
              b"-----END PUBLIC KEY-----\n")


def test_rs256_and_hs256_confusion_is_refused(client, root):
    claims = _claims_of(sign_in(client, "root")["access_token"])
    signing_input = f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    rs256 = f"{signing_input}.{_b64(b'x' * 256)}"
    assert client.get("/api/v1/me", headers=bearer(rs256)).status_code == 401
    # The classic confusion: HMAC signed with a public key, labelled RS256 or HS256.
    for alg in ("RS256", "HS256"):
        confused = _hs256({"alg": alg, "typ": "JWT"}, claims, PUBLIC_PEM)
        assert client.get("/api/v1/me", headers=bearer(confused)).status_code == 401


def test_expired_token_and_token_without_exp_are_refused(client, root):
    claims = _claims_of(sign_in(client, "root")["access_token"])
    expired = jwt.encode({**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, JWT_SECRET,
                         algorithm="HS256")
    response = client.get("/api/v1/me", headers=bearer(expired))
    assert response.status_code == 401 and "expired" in response.json()["error"]
    without_exp = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, JWT_SECRET, algorithm="HS256")
    assert client.get("/api/v1/me", headers=bearer(without_exp)).status_code == 401
    for missing in ("jti", "iat", "type", "sid"):
        partial = jwt.encode({k: v for k, v in claims.items() if k != missing}, JWT_SECRET, algorithm="HS256")
        assert client.get("/api/v1/me", headers=bearer(partial)).status_code == 401, missing


def test_refresh_token_is_not_an_access_token_and_back(client, root):
    pair = sign_in(client, "root")
    assert client.get("/api/v1/me", headers=bearer(pair["refresh_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]}).status_code == 401


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_session(client, root):
    pair = sign_in(client, "root")
    renewed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200
    new_pair = renewed.json()
    assert client.get("/api/v1/me", headers=bearer(new_pair["access_token"])).status_code == 200
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401 and "already used" in replay.json()["error"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": new_pair["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(new_pair["access_token"])).status_code == 401


def test_sign_out_revokes_the_refresh_token_and_the_access_token(client, root):
    pair = sign_in(client, "root")
    other = sign_in(client, "root")
    assert client.post("/api/v1/auth/sign-out", headers=bearer(pair["access_token"])).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 200


def test_password_change_revokes_every_session(client, root):
    first, second = sign_in(client, "root"), sign_in(client, "root")
    wrong = client.post("/api/v1/auth/password", headers=bearer(first["access_token"]),
                        json={"current_password": "nope", "new_password": "another long one"})
    assert wrong.status_code == 400
    changed = client.post("/api/v1/auth/password", headers=bearer(first["access_token"]),
                          json={"current_password": PASSWORD, "new_password": "another long one"})
    assert changed.status_code == 200 and changed.json()["sessions_signed_out"] == 2
    for pair in (first, second):
        assert client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "root", "password": PASSWORD}).status_code == 401
    sign_in(client, "root", "another long one")


def test_deactivated_user_is_stopped_at_once(client, runtime, root):
    make_user(runtime, "carol", ("viewer", None))
    carol = sign_in(client, "carol")
    admin = auth(client, "root")
    user_id = runtime.store.users.by_username("carol").id
    assert client.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=admin).status_code == 200
    assert client.get("/api/v1/lanes", headers=bearer(carol["access_token"])).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": carol["refresh_token"]}).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD}).status_code == 401
    assert [a.action for a in runtime.store.audit.entries(target=f"user:{user_id}")] == ["user:update", "sign_in"]


def test_sign_in_is_throttled_per_user_and_audited(client, runtime, root):
    for _ in range(5):
        assert client.post("/api/v1/auth/token", json={"username": "root", "password": "wrong!"}).status_code == 401
    throttled = client.post("/api/v1/auth/token", json={"username": "root", "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    outcomes = [a.outcome for a in runtime.store.audit.entries(action="sign_in")]
    assert outcomes[0] == "throttled" and outcomes.count("refused") == 5
    make_user(runtime, "other", ("viewer", None))
    sign_in(client, "other")  # another user from the same address is still under its limit


def test_sign_in_is_throttled_per_address(client, runtime):
    for attempt in range(20):
        client.post("/api/v1/auth/token", json={"username": f"guess{attempt}", "password": "wrong!"})
    make_user(runtime, "fresh", ("viewer", None))
    response = client.post("/api/v1/auth/token", json={"username": "fresh", "password": PASSWORD})
    assert response.status_code == 429


def test_overlong_password_is_a_clear_400_whoever_the_user(client, root):
    long_password = "é" * 40  # 80 bytes
    known = client.post("/api/v1/auth/token", json={"username": "root", "password": long_password})
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": long_password})
    assert known.status_code == unknown.status_code == 400
    assert known.json() == unknown.json() and "72 bytes" in known.json()["error"]


def test_unknown_and_wrong_password_answer_alike_with_a_real_cost_dummy_hash(client, runtime, root):
    from merge_assist.storage import passwords
    from merge_assist.storage.models import User

    with runtime.store.db.session() as session:
        stored = session.get(User, root).password_hash
    assert passwords._dummy_hash().split(b"$")[2] == stored.encode().split(b"$")[2]
    unknown = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "whatever1"})
    wrong = client.post("/api/v1/auth/token", json={"username": "root", "password": "whatever1"})
    assert unknown.status_code == wrong.status_code == 401 and unknown.json() == wrong.json()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"username": 5, "password": "x"}',
                                  b"[" * 5000 + b"]" * 5000])
def test_bad_sign_in_bodies_are_400(client, body):
    assert client.post("/api/v1/auth/token", content=body).status_code == 400


def test_oversized_body_is_413(client):
    assert client.post("/api/v1/auth/token", content=b"x" * 70_000).status_code == 413


def test_the_token_is_checked_before_the_body_is_parsed(client):
    for body in (b"not json", b"[" * 5000, b'{"unknown": 1}'):
        response = client.put("/api/v1/projects/3", content=body, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
