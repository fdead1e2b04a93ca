# Two commands do all set-up on a fresh machine (only Python 3.11+ needed):
#   make demo   simulate a small world, ingest it, print what was ingested and quarantined
#   make test   run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test browser bench bench-quick lock docs clean

$(STAMP): pyproject.toml requirements.lock requirements-overrides.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/distillguard demo --preset small --seed 0 --workdir demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 -q

# The report's test opens it in Debian's chromium (Playwright drives it; it downloads no
# browser). Installed when missing and this machine can (root with apt-get); otherwise
# that test is skipped, or fails where DISTILLGUARD_REQUIRE_BROWSER=1 (CI).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "note: $(CHROMIUM) is missing and cannot be installed here: the report's browser test will be skipped"

# The benchmark (docs/benchmarks.md): every method on the same worlds. The quick suite is CI's
# quality gate; the standard one produces every figure the README quotes (~30 min on 2 cores).
CORPORA ?= ../shared/corpora
bench: $(STAMP)
	$(BIN)/distillguard bench --suite standard --out .bench/standard $(if $(wildcard $(CORPORA)),--corpora $(CORPORA))

bench-quick: $(STAMP)
	$(BIN)/distillguard bench --suite quick --out .bench/quick --no-docs

# Refresh the hash-pinned lock after changing a version range in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --extra litellm --override requirements-overrides.txt --python-version 3.11 --generate-hashes --no-header -o requirements.lock

# Regenerate the docs that are generated from code.
docs: $(STAMP)
	$(BIN)/distillguard schema > docs/schema.md
	$(BIN)/distillguard formats > docs/formats.md

clean:
	rm -rf $(VENV) demo .distillguard .bench
