"""The base of every expected smap failure; it lives in `configs` so every layer can import it."""


class SmapError(Exception):
    """An expected failure the user can act on: the CLI prints its one-line message, exit 1.

    Anything that is not a `SmapError` is a bug and keeps its traceback.
    """
