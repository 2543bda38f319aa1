# The two README commands: `make run` and `make test`. Both work on a fresh clone.
# Installs rerun only when a requirements file changes (stamp files inside .venv).

VENV := .venv
PYTHON := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-requirements
DEV_STAMP := $(VENV)/.installed-requirements-dev
PIP_INSTALL := $(PYTHON) -m pip install -q --disable-pip-version-check
# Same rule as settings.py: TECKOCHECKER_ENV_FILE, else .env next to manage.py.
ENV_FILE := $(or $(TECKOCHECKER_ENV_FILE),.env)
PYTEST_ARGS ?=
# `make test` runs the suite in two phases (tests/phases.py): everything not marked `serial` on
# TEST_WORKERS pytest-xdist workers (0: in one process), then the `serial` tests alone. Most slow
# tests wait on the processes they start, so more workers than cores pays off. TEST_PHASES sets
# the order; both phases always run, and the target fails as soon as one fails.
TEST_WORKERS ?= 4
TEST_PHASES ?= parallel serial
ifneq ($(sort $(TEST_PHASES)),parallel serial)
$(error TEST_PHASES must name the phases parallel and serial once each, in either order)
endif
# Bytecode caching stays on for the tests even where PYTHONDONTWRITEBYTECODE is set: the suite
# starts ~200 Python processes, and every pytest process would otherwise compile again, assert
# rewriting included, each plugin and test module (~7 s of CPU per process).
pytest_phase = env -u PYTHONDONTWRITEBYTECODE $(PYTHON) -m pytest --phase $(1) \
	$(if $(filter parallel,$(1)),-n $(TEST_WORKERS) --dist worksteal) $(PYTEST_ARGS)

.PHONY: run stop test test-parallel test-serial lint demo bench

## run: set up if needed, then the web server, the workers and beat on http://127.0.0.1:8000
run: $(RUN_STAMP)
	@if [ "$(ENV_FILE)" != "none" ] && [ ! -e "$(ENV_FILE)" ]; then \
		$(PYTHON) manage.py init --no-input; \
	fi
	$(PYTHON) manage.py start

## stop: stop what `python manage.py start --daemon` started
stop: $(RUN_STAMP)
	$(PYTHON) manage.py stop

## test: the whole suite (PYTEST_ARGS passes options through, e.g. PYTEST_ARGS="-k init -x")
test: $(DEV_STAMP)
	$(call pytest_phase,$(word 1,$(TEST_PHASES)))
	$(call pytest_phase,$(word 2,$(TEST_PHASES)))

## test-parallel, test-serial: one phase of `make test` alone (CI overlaps other work with the parallel one)
test-parallel test-serial: $(DEV_STAMP)
	$(call pytest_phase,$(@:test-%=%))

## lint: ruff, configured in pyproject.toml
lint: $(DEV_STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

## demo: a scripted walk-through against the fake OpenAI and Keboola servers
demo: $(RUN_STAMP)
	@if [ "$(ENV_FILE)" != "none" ] && [ ! -e "$(ENV_FILE)" ]; then \
		$(PYTHON) manage.py init --no-input; \
	fi
	$(PYTHON) manage.py demo

## bench: memory of `start` at rest per process, then load figures (100 jobs; docs/BENCHMARKS.md has the bigger runs)
bench: $(RUN_STAMP)
	@if [ "$(ENV_FILE)" != "none" ] && [ ! -e "$(ENV_FILE)" ]; then \
		$(PYTHON) manage.py init --no-input; \
	fi
	$(PYTHON) -m bench.idle
	$(PYTHON) manage.py bench --jobs 100

$(PYTHON):
	python3 -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(PYTHON)
	$(PIP_INSTALL) -r requirements.txt
	@touch $@

# requirements-dev.txt includes requirements.txt, so it satisfies the run stamp as well.
$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PYTHON)
	$(PIP_INSTALL) -r requirements-dev.txt
	@touch $@ $(RUN_STAMP)
