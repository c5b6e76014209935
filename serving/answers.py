"""What an endpoint answers when it cannot score: the service's two refusals, and the id
every answer carries. Light on purpose: the BentoML class imports it at start-up."""

from __future__ import annotations

import re
import uuid

# a caller's own request id is kept when it is this (it is echoed and logged with every row)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Unavailable(RuntimeError):
    """The answer cannot be given right now (HTTP 503); the message says why."""


class BadRequest(ValueError):
    """The request is well formed but cannot be scored (HTTP 422); the message names the field."""


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id(given: str | None) -> str:
    """The caller's `x-request-id` when it is at most 64 of [A-Za-z0-9._-], else a fresh one:
    an id is echoed in a header and stored with every logged row, so it is never anything a
    caller likes (60,000 characters, control characters, another caller's log lines)."""
    return given if given and REQUEST_ID.fullmatch(given) else new_request_id()
