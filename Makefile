# slawatch: `make run` shows the demo, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest system-deps install clean

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@sh .ci/system-deps

run: $(STAMP)
	$(BIN)/slawatch demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Coverage floors of packages, beside the whole suite's fail_under in pyproject.toml.
FLOORED_PACKAGES := classifier config sla
PACKAGE_FLOOR := 95

pytest: $(STAMP) system-deps
	$(BIN)/pytest -q -n 2 --dist loadfile --cov --cov-report=term
	@for package in $(FLOORED_PACKAGES); do \
		printf '%s/ coverage %%: ' "$$package"; \
		$(BIN)/coverage report --include="$$package/*" --format=total \
			--fail-under=$(PACKAGE_FLOOR) || exit 1; \
	done

test: lint typecheck pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.*
