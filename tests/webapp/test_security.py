"""Every security rule of the web app, as a client (or an attacker) meets it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.queues import Queue
from storage.user_schema import UserRow, UserSessionRow
from tests.webapp.conftest import PASSWORD, Site, claim
from webapp.auth import disable_user, hash_token


def _api_routes(site: Site) -> list[tuple[str, str]]:
    """Every route of the JSON API (from its OpenAPI description), with ids filled in."""
    routes = []
    for path, operations in site.app.openapi()["paths"].items():
        concrete = re.sub(r"\{[a-z_]+\}", "1", path.replace("{video_id}", site.video_id))
        routes += [(method.upper(), concrete) for method in operations]
    return routes


def test_anonymous_requests_are_refused_everywhere(site: Site) -> None:
    site.enqueue_one(1)
    anonymous = site.client()
    routes = _api_routes(site)
    assert len(routes) > 15
    for method, path in routes:
        if path == "/api/session/login":
            continue
        response = anonymous.get(path) if method == "GET" else anonymous.post(path, {"frame": 0, "x": 1, "y": 1})
        assert response.status_code == 401, (method, path, response.status_code)
    for page in ("/", "/dashboard", "/annotate/1", "/verify/1"):
        response = anonymous.get(page, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_another_users_task_is_refused(site: Site) -> None:
    site.enqueue_one(3)
    ann, other = site.client("ann"), site.client("ann2")
    task = claim(ann, Queue.ANNOTATE_PHASE_3)
    hint = ann.ok("GET", f"/api/tasks/{task['id']}")["task"]["hint"]
    click = {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]}
    assert other.get(f"/api/tasks/{task['id']}").status_code == 403
    for path, body in (("click", click), ("stroke", {"frame": 0, "points": [[1, 1]], "radius": 2}), ("undo", {}),
                       ("propagate", {"frame": 0}), ("heartbeat", {}), ("submit", {"allow_untouched": True}),
                       ("verdict", {"verdict": "satisfactory"})):
        response = other.post(f"/api/tasks/{task['id']}/{path}", body)
        assert response.status_code == 403 and "not leased to you" in response.json()["error"], path
    # Nor may they read the frames of a video they do not work on; its holder and admins may.
    assert other.get(f"/api/videos/{site.video_id}/frames/0").status_code == 403
    frame = ann.get(f"/api/videos/{site.video_id}/frames/0")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg" and frame.content[:2] == b"\xff\xd8"
    assert site.client("boss").get(f"/api/videos/{site.video_id}/frames/0").status_code == 200
    ann.ok("POST", f"/api/tasks/{task['id']}/click", click)  # the holder still can


def test_self_verification_is_refused(any_site: Site) -> None:
    site = any_site
    site.enqueue_one(1)
    boss = site.client("boss")  # an admin may annotate and verify, but never their own masklet
    task = claim(boss, Queue.ANNOTATE_PHASE_1)
    hint = boss.ok("GET", f"/api/tasks/{task['id']}")["task"]["hint"]
    boss.ok("POST", f"/api/tasks/{task['id']}/click", {"frame": hint["frame"], "x": hint["x"], "y": hint["y"]})
    submitted = boss.ok("POST", f"/api/tasks/{task['id']}/submit", {"allow_untouched": True})
    verify_id = submitted["verify_task_id"]

    assert boss.ok("POST", "/api/tasks/claim", {"queue": "verify"})["task"] is None
    assert boss.post(f"/api/tasks/{verify_id}/verdict", {"verdict": "satisfactory"}).status_code == 403
    assert boss.get(f"/api/tasks/{verify_id}").status_code == 403

    ver = site.client("ver")
    assert claim(ver, Queue.VERIFY)["id"] == verify_id
    judged = ver.ok("POST", f"/api/tasks/{verify_id}/verdict", {"verdict": "satisfactory"})
    assert judged["verdict"] == "satisfactory"


@pytest.mark.parametrize(
    "path",
    [
        "/api/videos/..%2F..%2F..%2Fetc%2Fpasswd/frames/0",
        "/api/videos/%2E%2E/frames/0",
        "/api/videos/a..b/frames/0",
        "/api/videos/{video}/frames/..%2F..%2Fcatalog.db",
        "/api/videos/{video}/frames/-1",
        "/api/videos/{video}%2F..%2F..%2Fcatalog.db/frames/0",
        "/static/..%2F..%2Fwebapp%2Fapp.py",
        "/static/../app.py",
    ],
)
def test_path_traversal_is_refused(site: Site, path: str) -> None:
    boss = site.client("boss")  # an admin, who may read every video's frames
    response = boss.get(path.replace("{video}", site.video_id))
    assert response.status_code in (400, 404, 422), response.status_code
    assert b"import" not in response.content and b"SQLite" not in response.content


def test_oversized_requests_are_refused(site: Site) -> None:
    site.enqueue_one(1)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_1)
    huge = {"frame": 0, "points": [[1.0, 1.0]] * 40000, "radius": 2}
    response = ann.post(f"/api/tasks/{task['id']}/stroke", huge)
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():
        for _ in range(64):
            yield b" " * 8192

    streamed = ann.http.post(
        f"/api/tasks/{task['id']}/stroke", content=chunks(), headers={"X-CSRF-Token": ann.csrf, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    # Within the byte limit but over the stroke's point limit: refused by validation.
    many = ann.post(f"/api/tasks/{task['id']}/stroke", {"frame": 0, "points": [[1, 1]] * 5000, "radius": 2})
    assert many.status_code == 422
    long_note = ann.post("/api/session/login", {"name": "x" * 5000, "password": "y"})
    assert long_note.status_code == 422


def test_brute_force_logins_are_throttled_per_user_and_per_address(any_site: Site) -> None:
    site = any_site
    attacker = site.client()
    for _ in range(5):
        assert attacker.login("ann", "wrong password").status_code == 401
    throttled = attacker.login("ann", PASSWORD)  # even the right password, while throttled
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert site.client().login("ann2").status_code == 200  # other users are not locked out
    # Per address (every test client is "testclient"): failures spread over many names stop it too.
    for i in range(15):  # 5 + 15 failures: the address's limit of 20
        attacker.login(f"guess{i}", "wrong password")
    assert attacker.login("ver", PASSWORD).status_code == 429
    assert attacker.login("nobody", "whatever").status_code == 429


def test_state_changes_without_a_csrf_token_are_refused(site: Site) -> None:
    site.enqueue_one(1)
    ann = site.client("ann")
    task = claim(ann, Queue.ANNOTATE_PHASE_1)
    body = {"frame": 0, "x": 1, "y": 1}
    missing = ann.http.post(f"/api/tasks/{task['id']}/click", json=body)
    wrong = ann.http.post(f"/api/tasks/{task['id']}/click", json=body, headers={"X-CSRF-Token": "0" * 64})
    foreign = ann.post(f"/api/tasks/{task['id']}/click", body, headers={"Origin": "https://evil.example"})
    for response in (missing, wrong, foreign):
        assert response.status_code == 403, response.text
    assert ann.http.post("/api/tasks/claim", json={}).status_code == 403
    assert ann.http.post("/api/session/logout").status_code == 403
    assert ann.post(f"/api/tasks/{task['id']}/click", body).status_code == 200


def test_a_disabled_users_sessions_are_revoked(any_site: Site) -> None:
    site = any_site
    ann = site.client("ann")
    assert ann.get("/api/session/me").status_code == 200
    disable_user(site.catalog, "ann")
    assert ann.get("/api/session/me").status_code == 401
    assert ann.post("/api/tasks/claim", {}).status_code == 401
    with site.catalog.read() as session:
        user_id = session.scalar(select(UserRow.id).where(UserRow.name == "ann"))
        assert all(r.revoked_at is not None for r in session.scalars(select(UserSessionRow).where(UserSessionRow.user_id == user_id)))
    assert site.client().login("ann").status_code == 401


def test_session_cookies_are_http_only_strict_renewed_at_login_and_revoked_at_logout(site: Site) -> None:
    ann = site.client()
    response = ann.login("ann")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    first = ann.http.cookies.get("dataengine_session")
    with site.catalog.read() as session:
        stored = session.scalars(select(UserSessionRow.token_hash)).all()
    assert hash_token(first) in stored and first not in stored  # only the hash is kept

    ann.login("ann")
    second = ann.http.cookies.get("dataengine_session")
    assert second != first
    stale = site.client()
    stale.http.cookies.set("dataengine_session", first)
    assert stale.get("/api/session/me").status_code == 401  # the old session was revoked at login

    assert ann.post("/api/session/logout").status_code == 200
    again = site.client()
    again.http.cookies.set("dataengine_session", second)
    assert again.get("/api/session/me").status_code == 401


def test_passwords_are_stored_as_argon2id_hashes(site: Site) -> None:
    with site.catalog.read() as session:
        hashes = session.scalars(select(UserRow.password_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_responses_carry_security_headers(site: Site) -> None:
    response = site.client().get("/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
