"""What an endpoint answers when it cannot score: the service's two refusals, and the id
every answer carries. Light on purpose: the BentoML class imports it at start-up."""

from __future__ import annotations

import uuid


class Unavailable(RuntimeError):
    """The answer cannot be given right now (HTTP 503); the message says why."""


class BadRequest(ValueError):
    """The request is well formed but cannot be scored (HTTP 422); the message names the field."""


def new_request_id() -> str:
    return uuid.uuid4().hex
