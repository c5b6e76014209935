"""The one error type of the training stages: its message is a single line naming the problem."""

from configs.errors import SmapError


class TaskError(SmapError, ValueError):
    """A task that does not exist or cannot be trained on the data at hand."""
