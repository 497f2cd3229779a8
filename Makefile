# enclavefl: `make demo` sets up and runs the seed federation; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint format typecheck check bench clean setup setup-llm

setup: $(STAMP)

# the language-model extra (examples/lora): torch named again so that no dependency can move it off 2.13.0
setup-llm: $(STAMP)
	$(PY) -m pip install --quiet -e '.[llm]' torch==2.13.0

# torch first, pinned: that version is a CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[torch,examples,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/enclavefl demo

test: $(STAMP)
	$(PY) -m pytest -q

# The inner loop (CI runs `make test`): without the `slow` marker (a fresh interpreter, a browser or real processes
# per test: benchmark smoke runs, import-hygiene probes, Ctrl-C and SIGKILL runs) and the multi-process suites
# (integration, faults, examples), the demos that train (demos) and the mypy runs on the user script
# (test_user_script); docs/performance.md says what the smoke runs skip.
# Two pytest-xdist workers, a test file per worker at a time (module fixtures are made once); FAST_WORKERS=0 runs
# it in this process (for a debugger or -x), FAST_WORKERS=auto one worker per core.
FAST_SKIP := --ignore=tests/integration --ignore=tests/faults --ignore=tests/examples --ignore=tests/demos \
             --ignore=tests/api/test_user_script.py
FAST_WORKERS ?= 2
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(FAST_SKIP) -n $(FAST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) benchmarks/bench_fold.py

# Builds enclave releases and runs the node under Gramine (root, mmdebstrap, Gramine 1.9 on PATH; not in CI).
.PHONY: gramine-test
gramine-test: $(STAMP)
	GRAMINE=1 $(PY) -m pytest -q tests/integration/test_gramine_release.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
