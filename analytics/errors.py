"""The one error type of the analyses: its message is a single line naming the problem."""

from configs.errors import SmapError


class AnalyticsError(SmapError, ValueError):
    """An analysis that cannot answer: bad input, or its tables are not built yet."""
