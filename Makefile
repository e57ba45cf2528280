# The project's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## run the whole bot: embedded Redis, webhook, worker, scheduler, simulator
	$(BIN)/python -m bot run

test: $(STAMP)  ## run the test suite (installs Debian's chromium for the browser test if it can)
	sh scripts/install-browser
	$(BIN)/ruff check bot tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff over the code
	$(BIN)/ruff check bot tests bench

bench: $(STAMP)  ## run every benchmark under bench/
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) var
