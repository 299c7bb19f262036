"""The web app's own settings: leases, sessions, limits. ``dataengine serve`` sets them from its options."""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.auth import LoginLimits


@dataclass(frozen=True)
class WebConfig:
    """How the web app treats its users' leases, sessions and requests."""

    # A page heartbeats every third of it; a closed tab gives its task back within this time.
    lease_s: float = 300.0
    session_hours: float = 12.0
    # A longer pause between two actions counts as this long (the page left open, not work).
    idle_cap_s: float = 120.0
    # Bodies are JSON: a click, a stroke of a few thousand points, a verdict note.
    max_body_bytes: int = 256 * 1024
    # Secure cookies travel over HTTPS only; off for plain http on loopback (and in tests).
    secure_cookies: bool = True
    login_limits: LoginLimits = field(default_factory=LoginLimits)
    max_workspaces: int = 64
    dashboard_ttl_s: float = 5.0

    @property
    def session_s(self) -> float:
        return self.session_hours * 3600.0
