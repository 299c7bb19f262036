"""Users, roles, passwords, login sessions, CSRF tokens and login throttling, on the catalog.

- **Users** have one role: ``annotator`` (annotation and refinement queues), ``verifier``
  (verification) or ``admin`` (everything, every video's frames). A user's name is the worker
  name the queues, masklets and annotation events record, so their work is theirs everywhere.
- **Passwords** are hashed with argon2id (memory-hard; ``argon2-cffi``'s RFC 9106 low-memory
  profile by default), re-hashed at login when the parameters change.
- **Sessions**: a token from :mod:`secrets` goes to the browser in an HttpOnly, SameSite=Strict
  cookie; the catalog keeps only its SHA-256, so reading the catalog does not give a session
  away. A login always makes a new token (and revokes the one the browser came with); logout
  revokes it; disabling a user revokes all of theirs in the same transaction.
- **CSRF**: every state-changing request carries ``X-CSRF-Token``, an HMAC of the session
  token; a page of another site can neither read the cookie nor compute it.
- **Throttling**: every attempt is recorded by name and client address; too many recent
  failures for either refuse further attempts for a while, whichever server process gets them.

Functions taking a ``Session`` run in the caller's transaction, so the web app can check a
user inside the same transaction as the change they ask for.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import AuthenticationError, BadUserError, LoginThrottledError, NotFoundError
from engine.queues import Queue
from storage.catalog import Catalog
from storage.schema import utcnow
from storage.user_schema import LoginAttemptRow, UserRow, UserSessionRow

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps a login request cheap to refuse
TOKEN_BYTES = 32
CSRF_CONTEXT = b"dataengine csrf v1"
SIGNED_OUT = "not logged in, or the session ended: log in again"


class Role(StrEnum):
    ANNOTATOR = "annotator"
    VERIFIER = "verifier"
    ADMIN = "admin"


ROLE_QUEUES: dict[Role, tuple[Queue, ...]] = {
    # Refinement first: unsatisfactory masklets block the dataset more than new ones do.
    Role.ANNOTATOR: (Queue.REFINE, Queue.ANNOTATE_PHASE_1, Queue.ANNOTATE_PHASE_2, Queue.ANNOTATE_PHASE_3),
    Role.VERIFIER: (Queue.VERIFY,),
    Role.ADMIN: (Queue.REFINE, Queue.ANNOTATE_PHASE_1, Queue.ANNOTATE_PHASE_2, Queue.ANNOTATE_PHASE_3, Queue.VERIFY),
}


@dataclass(frozen=True)
class User:
    """A person of the web app, as the catalog holds them (never their password hash)."""

    id: int
    name: str
    role: Role
    disabled: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def queues(self) -> tuple[Queue, ...]:
        """The queues this user may claim from, in the order the app offers them."""
        return ROLE_QUEUES[self.role]

    def may_work(self, queue: Queue) -> bool:
        return queue in self.queues


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins in ``window_s`` stop further attempts, per user name and per address."""

    window_s: float = 900.0
    per_user: int = 5
    per_client: int = 20


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str  # the session token, for the cookie; the catalog keeps only its hash
    expires_at: datetime


class Passwords:
    """argon2id hashing; ``memory_kib``/``time_cost`` are lowered only by tests, for speed."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against for unknown names, so a login takes as long whether the name exists or not.
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(check_password(password))

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


# --- users ------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadUserError(
            f"user name {name!r} is not usable: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise BadUserError(f"unknown role {role!r}: roles are {', '.join(r.value for r in Role)}") from None


def check_password(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadUserError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def add_user(catalog: Catalog, passwords: Passwords, name: str, role: str | Role, password: str) -> User:
    """Create a user; BadUserError when the name is taken or anything is unusable."""
    row = UserRow(name=check_name(name), role=parse_role(role).value, password_hash=passwords.hash(password), disabled=False)
    try:
        with catalog.write() as session:
            session.add(row)
            session.flush()
            return _user(row)
    except IntegrityError:
        raise BadUserError(f"there is already a user called {name!r}") from None


def disable_user(catalog: Catalog, name: str, *, now: datetime | None = None) -> User:
    """Disable a user and revoke every session of theirs, in one transaction."""
    now = now or utcnow()
    with catalog.write() as session:
        row = _user_row(session, name)
        if not row.disabled:
            row.disabled, row.disabled_at = True, now
        session.execute(
            update(UserSessionRow)
            .where(UserSessionRow.user_id == row.id, UserSessionRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return _user(row)


def enable_user(catalog: Catalog, name: str) -> User:
    with catalog.write() as session:
        row = _user_row(session, name)
        row.disabled, row.disabled_at = False, None
        return _user(row)


def set_password(catalog: Catalog, passwords: Passwords, name: str, password: str, *, now: datetime | None = None) -> User:
    """A new password; the user's sessions are revoked, as anyone holding one may be who it was changed against."""
    hashed = passwords.hash(password)
    now = now or utcnow()
    with catalog.write() as session:
        row = _user_row(session, name)
        row.password_hash = hashed
        session.execute(
            update(UserSessionRow)
            .where(UserSessionRow.user_id == row.id, UserSessionRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return _user(row)


def list_users(catalog: Catalog) -> list[User]:
    with catalog.read() as session:
        return [_user(r) for r in session.scalars(select(UserRow).order_by(UserRow.name))]


def user_names(session: Session) -> set[str]:
    """Every user's name: the workers that are people (the rest are simulated)."""
    return set(session.scalars(select(UserRow.name)))


# --- sessions -----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: computable only by whoever holds the (HttpOnly) session token."""
    return hmac.new(session_token.encode("utf-8"), CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(session_token: str | None, presented: str | None) -> bool:
    if not session_token or not presented:
        return False
    return hmac.compare_digest(csrf_token(session_token), presented)


def authenticate(session: Session, token: str | None, now: datetime) -> User:
    """The user of a live session token, in the caller's transaction; AuthenticationError otherwise.

    Live: not revoked, not expired, and its user not disabled, all checked in one query, so a
    user disabled a moment ago is refused by the very next request.
    """
    if not token or len(token) > 256:
        raise AuthenticationError(SIGNED_OUT)
    row = session.scalars(
        select(UserRow)
        .join(UserSessionRow, UserSessionRow.user_id == UserRow.id)
        .where(
            UserSessionRow.token_hash == hash_token(token),
            UserSessionRow.revoked_at.is_(None),
            UserSessionRow.expires_at > now,
            UserRow.disabled.is_(False),
        )
    ).first()
    if row is None:
        raise AuthenticationError(SIGNED_OUT)
    return _user(row)


def login(
    catalog: Catalog,
    passwords: Passwords,
    name: str,
    password: str,
    client: str,
    *,
    lifetime_s: float,
    limits: LoginLimits = LoginLimits(),
    previous_token: str | None = None,
    now: datetime | None = None,
) -> LoginResult:
    """Check a name and password and open a new session; throttled, and timed alike for unknown names.

    The attempt is recorded before the (slow) password check, in the same transaction as the
    count that allowed it, so parallel guesses cannot slip past the limit together.
    """
    now = now or utcnow()
    client = (client or "unknown")[:64]
    name = name if isinstance(name, str) else ""
    with catalog.write() as session:
        _refuse_if_throttled(session, name[:128], client, limits, now)
        attempt = LoginAttemptRow(name=name[:128], client=client, at=now, succeeded=False)
        session.add(attempt)
        session.flush()
        attempt_id = attempt.id
        row = session.scalars(select(UserRow).where(UserRow.name == name)).first() if len(name) <= 128 else None
        stored = None if row is None else row.password_hash
    if not isinstance(password, str) or len(password) > MAX_PASSWORD or not passwords.verify(stored, password):
        raise AuthenticationError("wrong user name or password")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    expires = now + timedelta(seconds=lifetime_s)
    with catalog.write() as session:
        row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
        if row is None or row.disabled or row.password_hash != stored:
            raise AuthenticationError("wrong user name or password")  # disabled or changed meanwhile
        session.execute(update(LoginAttemptRow).where(LoginAttemptRow.id == attempt_id).values(succeeded=True))
        if previous_token:
            _revoke(session, previous_token, now)
        if passwords.needs_rehash(row.password_hash):
            row.password_hash = passwords.hash(password)
        session.add(UserSessionRow(user_id=row.id, token_hash=hash_token(token), client=client, created_at=now, expires_at=expires))
        # Old attempts only matter inside the window; keep the table small.
        session.execute(delete(LoginAttemptRow).where(LoginAttemptRow.at < now - timedelta(days=1)))
        return LoginResult(_user(row), token, expires)


def logout(catalog: Catalog, token: str | None, *, now: datetime | None = None) -> None:
    """Revoke the session of ``token`` (nothing happens for an unknown one)."""
    if not token:
        return
    with catalog.write() as session:
        _revoke(session, token, now or utcnow())


def _revoke(session: Session, token: str, now: datetime) -> None:
    session.execute(
        update(UserSessionRow)
        .where(UserSessionRow.token_hash == hash_token(token), UserSessionRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _refuse_if_throttled(session: Session, name: str, client: str, limits: LoginLimits, now: datetime) -> None:
    since = now - timedelta(seconds=limits.window_s)
    last_success = session.scalar(
        select(func.max(LoginAttemptRow.at)).where(LoginAttemptRow.name == name, LoginAttemptRow.succeeded.is_(True))
    )
    user_since = max(since, last_success) if last_success is not None else since
    failed = LoginAttemptRow.succeeded.is_(False)
    for who, condition, start, limit in (
        (f"user {name!r}", LoginAttemptRow.name == name, user_since, limits.per_user),
        (f"address {client}", LoginAttemptRow.client == client, since, limits.per_client),
    ):
        times = list(
            session.scalars(
                select(LoginAttemptRow.at).where(condition, failed, LoginAttemptRow.at > start).order_by(LoginAttemptRow.at.desc()).limit(limit)
            )
        )
        if len(times) >= limit:
            # Allowed again once the oldest of the last `limit` failures leaves the window.
            retry = max(1, math.ceil((times[-1] + timedelta(seconds=limits.window_s) - now).total_seconds()))
            raise LoginThrottledError(
                f"too many failed logins for {who}: try again in {retry} s", retry_after_s=retry
            )


def _user_row(session: Session, name: str) -> UserRow:
    row = session.scalars(select(UserRow).where(UserRow.name == name)).first()
    if row is None:
        raise NotFoundError(f"no user called {name!r}")
    return row


def _user(row: UserRow) -> User:
    return User(row.id, row.name, Role(row.role), bool(row.disabled), row.created_at)
