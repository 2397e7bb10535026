# slawatch: `make run` shows the demo, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck docs pytest system-deps install clean screenshots

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

# The documentation site (mkdocs.yml): strict, so any warning (a broken link or anchor,
# a page missing from the nav) fails the build. No --quiet: it hides the warnings and lets
# a strict build pass. NO_MKDOCS_2_WARNING silences the theme's banner about MkDocs 2.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

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

test: lint typecheck docs pytest

# Refresh the page screenshots shown in docs/pages.md from the browser test's artifacts.
screenshots: $(STAMP) system-deps
	$(BIN)/pytest -q tests/daemon/test_pages_browser.py
	mkdir -p docs/images
	cp test-artifacts/pages/*.png docs/images/

clean:
	rm -rf $(VENV) build dist site *.egg-info .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* test-artifacts
