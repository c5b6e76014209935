"""The error types of the training stages: each message is a single line naming the problem."""

from configs.errors import SmapError


class TaskError(SmapError, ValueError):
    """A task that does not exist or cannot be trained on the data at hand."""


class RegistryError(SmapError, RuntimeError):
    """The model registry, or the champion history that mirrors it, failed mid-gate; the gate
    fails closed (the champion stays where it was) instead of guessing."""
