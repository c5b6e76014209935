"""`python -m pipelines` is the `smap` command."""

from pipelines.cli import run

run()
