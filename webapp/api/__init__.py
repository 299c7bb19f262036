"""The JSON API under ``/api/``: one router per subject (session, tasks, verify, frames, dashboard)."""
