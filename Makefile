# The commands people and CI run. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
# uv is looked up when a recipe runs, so one installed by `make uv` is found at once (as a
# command, or as the `uv` module of the Python that installed it)
UV = $$(command -v uv || echo python3 -m uv)
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := True
export EVIDENTLY_DISABLE_TELEMETRY := 1

.PHONY: uv install demo test test-unit lint bench clean

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# bytecode compiled once at install: every smap command and test subprocess imports Feast,
# MLflow and friends, and with PYTHONDONTWRITEBYTECODE set nothing else would cache it
install: uv
	@$(UV) sync --frozen --quiet --compile-bytecode

demo: install
	$(UV) run smap demo

test: install
	$(UV) run pytest

test-unit: install
	$(UV) run pytest tests/unit

lint: install
	$(UV) run ruff format --check .
	$(UV) run ruff check .

bench: install
	mkdir -p .smap/bench
	$(UV) run python benchmarks/ingest.py --json .smap/bench/ingest.json
	$(UV) run python benchmarks/tuning.py --json .smap/bench/tuning.json
	$(UV) run python benchmarks/training_set.py --preset small --json .smap/bench/training_set.json
	$(UV) run python benchmarks/serving.py --preset quick --json .smap/bench/serving.json

clean:
	rm -rf .smap
