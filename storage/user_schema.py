"""The web app's tables: users, their login sessions, and login attempts (for throttling).

They sit on the same ``Base`` as the rest of the catalog (so ``Base.metadata`` and the
migration-vs-models test cover them) and are created by migration ``0003_web_users``.

- ``users``: a person who works in the browser, with one role (annotator, verifier, admin)
  and an argon2id password hash; the name is the worker name the queues and masklets record.
- ``user_sessions``: one login; only the SHA-256 of the session token is stored, so a copy of
  the catalog does not hand out live sessions. Revoked at logout and when the user is disabled.
- ``login_attempts``: every attempt, by name and client address, so that guessing is
  throttled per user and per address across server processes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import Base, UtcDateTime, _in, utcnow

ROLES = ("annotator", "verifier", "admin")


class UserRow(Base):
    """A person who logs in to the web app."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="ck_users_role"),
        UniqueConstraint("name", name="uq_users_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class UserSessionRow(Base):
    """One login of a user; the cookie holds the token, the catalog only its hash."""

    __tablename__ = "user_sessions"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_user_sessions_token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class LoginAttemptRow(Base):
    """One login attempt; failures in a recent window throttle the name and the address."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_name_at", "name", "at"),
        Index("ix_login_attempts_client_at", "client", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
