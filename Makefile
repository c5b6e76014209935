# The commands people and CI run. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
# uv is looked up when a recipe runs, so one installed by `make uv` is found at once (as a
# command, or as the `uv` module of the Python that installed it)
UV = $$(command -v uv || echo python3 -m uv)
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := True
export EVIDENTLY_DISABLE_TELEMETRY := 1

.PHONY: uv install chromium demo test test-unit lint bench clean

# pip installs uv when it is missing: -qq keeps its errors and drops its warnings (running as
# root, and every folder of a machine's pip config that holds no uv: "Location ... is ignored")
uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || PIP_ROOT_USER_ACTION=ignore python3 -m pip install -qq uv

# bytecode compiled once at install: every smap command and test subprocess imports Feast,
# MLflow and friends, and with PYTHONDONTWRITEBYTECODE set nothing else would cache it
install: uv
	@$(UV) sync --frozen --quiet --compile-bytecode

# the browser tests render Evidently reports in Debian's headless chromium: installed when it
# is missing and this can (root with apt-get); otherwise they skip, or fail under CI=true
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; } || echo "chromium not installed (needs root and apt-get): browser tests skip, or fail under CI=true" >&2

demo: install
	$(UV) run smap demo

# coverage of the smap packages is printed by every pytest run (pyproject.toml); the whole
# suite must keep it at the floor. Measured 94.0% with PostgreSQL and Redis (CI=true) and
# 92.6% without them (their tests skip): the floor is 3 points under the lower figure, so a
# fresh machine passes too. Raise it as coverage grows.
test: install chromium
	$(UV) run pytest --cov-fail-under=89

test-unit: install
	$(UV) run pytest tests/unit

lint: install
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy

bench: install
	mkdir -p .smap/bench
	$(UV) run python benchmarks/ingest.py --json .smap/bench/ingest.json
	$(UV) run python benchmarks/tuning.py --json .smap/bench/tuning.json
	$(UV) run python benchmarks/model_quality.py --trials 10 --json .smap/bench/model_quality.json
	$(UV) run python benchmarks/training_set.py --preset small --json .smap/bench/training_set.json
	$(UV) run python benchmarks/serving.py --preset quick --json .smap/bench/serving.json
	$(UV) run python benchmarks/experiment_aa.py --seeds 1000 --json .smap/bench/experiment_aa.json
	$(UV) run python benchmarks/soak.py --json .smap/bench/soak.json
	$(UV) run python benchmarks/drift.py --json .smap/bench/drift.json
	$(UV) run python benchmarks/ab_coverage.py --seeds 100 --json .smap/bench/ab_coverage.json
	$(UV) run smap cluster up
	$(UV) run python benchmarks/scale.py --preset small --sizes 1,4 --json .smap/bench/scale.json; status=$$?; $(UV) run smap cluster down; exit $$status

clean:
	rm -rf .smap
