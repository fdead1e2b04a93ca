# Two commands do all set-up on a fresh machine (only Python 3.11+ needed):
#   make demo   simulate a small world, ingest it, print what was ingested and quarantined
#   make test   run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lock docs clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/distillguard demo --preset small --seed 0 --workdir demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# Refresh the hash-pinned lock after changing a version range in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements.lock

# Regenerate the docs that are generated from code.
docs: $(STAMP)
	$(BIN)/distillguard schema > docs/schema.md

clean:
	rm -rf $(VENV) demo .distillguard
