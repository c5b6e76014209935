"""A refused request is one line in the service's log; a server error keeps its traceback.

BentoML logs every request its handler fails with `logger.error(..., exc_info=True)`
(`bentoml._internal.server.http_app.log_exception`): a body its pydantic types reject (400,
which `BadInputIs422` answers as 422) or a `BentoMLException` of a 4xx code included. Under
bad traffic that is a full traceback per request (1,100 bad requests: 2.6 MB of log). The
filter below turns those records into one INFO line naming the path, the status and the
first error; a 5xx record passes as it is. Light on purpose: the BentoML class installs it
at import, so BentoML is not imported here (its exception is known by its `error_code`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from pydantic import ValidationError

BENTOML_HANDLER_LOG = "bentoml._internal.server.http_app"


def client_status(exc: BaseException | None) -> int | None:
    """The 4xx status a request failed with, or None (a server error, or no exception)."""
    if isinstance(exc, ValidationError):
        return 422  # BentoML says 400; `BadInputIs422` answers 422
    code = getattr(getattr(exc, "error_code", None), "value", None)
    if isinstance(code, int) and 400 <= code < 500:
        return 422 if code == 400 else code
    return None


def first_error(errors: list, where_none: str = "body") -> str:
    """pydantic's errors as one line naming the first field: `drafts.0.user_id: Input should
    be ... (+2 more)`; `where_none` when the whole body is at fault (invalid JSON)."""
    first: Mapping[str, Any] = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    where = ".".join(str(p) for p in first.get("loc", ())) or where_none
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def _first_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return first_error(
            exc.errors(include_url=False, include_context=False, include_input=False), exc.title
        )
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class ClientErrorsOneLine(logging.Filter):
    """Rewrites a 4xx record of BentoML's request handler as one INFO line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        status = client_status(exc)
        if exc is None or status is None or record.levelno < logging.ERROR:
            return True
        try:
            path, method = cast(tuple, record.args)  # "Exception on %s [%s]"
        except (TypeError, ValueError):
            path, method = "?", "?"
        record.msg = "%s %s %s: %s"
        record.args = (status, method, path, _first_error(exc)[:300])
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def one_line_client_errors() -> None:
    """Install the filter on BentoML's request-handler logger (once per process)."""
    logger = logging.getLogger(BENTOML_HANDLER_LOG)
    if not any(isinstance(f, ClientErrorsOneLine) for f in logger.filters):
        logger.addFilter(ClientErrorsOneLine())
