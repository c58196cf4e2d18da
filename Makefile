# The inner loop. `make help` lists the targets; CONTRIBUTING.md explains them.
#
# Everything runs in $(VENV) (created by `make venv`). Cargo honours
# CARGO_TARGET_DIR from the environment (e.g. a target directory shared by
# several worktrees); PYO3_PYTHON points cargo at the venv's interpreter.

PYTHON ?= python3
VENV ?= .venv
VPY := $(CURDIR)/$(VENV)/bin/python
PYTEST_ARGS ?= -q -rs --timeout 600 -p no:cacheprovider
# The extras `make venv` installs (what CI installs).
EXTRAS ?= test,docs,integrations
# Stubtest allowlist: only what stubtest cannot see (see the file's header).
STUBTEST_ALLOWLIST := .ci/stubtest-allowlist

export PYO3_PYTHON := $(VPY)
export CARGO_TERM_COLOR ?= never
# The interpreter's shared library, for the Rust unit tests that embed it.
PY_LIBDIR = $(shell $(VPY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')

.PHONY: help venv dev release lint fmt typecheck stubtest docs test-rust test test-one \
	bench bench-smoke ci

help:
	@echo "make venv        create $(VENV), install the SDK (dev build) with the $(EXTRAS) extras"
	@echo "make dev         rebuild the extension after a Rust change (dev profile: seconds)"
	@echo "make release     rebuild with the release profile (what users get; minutes)"
	@echo "make lint        cargo fmt --check, clippy -D warnings, ruff check, ruff format --check"
	@echo "make fmt         apply cargo fmt, ruff format and ruff's safe fixes"
	@echo "make typecheck   mypy --strict python/infinium, and stubtest of _core.pyi"
	@echo "make docs        build the API reference (mkdocs build --strict; Python 3.11+)"
	@echo "make test-rust   the Rust unit tests (cargo test --lib)"
	@echo "make test        the whole pytest suite"
	@echo "make test-one T=tests/test_tracing.py::test_name   one test, a file, or -k expr"
	@echo "make bench       the full benchmark (needs a release build: make release)"
	@echo "make bench-smoke a quick run of the benchmark harness (CI; not a benchmark)"
	@echo "make ci          every check .ci/run runs, in its order"

# --- build -------------------------------------------------------------------

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

venv: $(VPY)
	MATURIN_PEP517_ARGS="--profile dev" $(VPY) -m pip install -q -e '.[$(EXTRAS)]'

dev: $(VPY)
	MATURIN_PEP517_ARGS="--profile dev" $(VPY) -m pip install -q -e . --no-deps

release: $(VPY)
	$(VPY) -m pip install -q -e . --no-deps

# --- checks ------------------------------------------------------------------

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	$(VPY) -m ruff check python tests benches
	$(VPY) -m ruff format --check python tests benches

fmt:
	cargo fmt --all
	$(VPY) -m ruff check --fix python tests benches
	$(VPY) -m ruff format python tests benches

typecheck: stubtest
	$(VPY) -m mypy --strict python/infinium

# Compares python/infinium/_core.pyi with the built extension (run from /tmp so
# the installed package is the one imported).
stubtest:
	cd /tmp && $(VPY) -m mypy.stubtest infinium._core \
		--allowlist $(CURDIR)/$(STUBTEST_ALLOWLIST)

# The pinned mkdocs plugins need Python 3.11+: skipped (and said so) before that.
docs:
	@if $(VPY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		site=$$(mktemp -d) && $(VPY) -m mkdocs build --strict --quiet --site-dir "$$site"; \
		status=$$?; rm -rf "$$site"; exit $$status; \
	else echo "skipped: the pinned mkdocs plugins need Python 3.11+"; fi

test-rust:
	LD_LIBRARY_PATH="$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" cargo test --lib

test:
	$(VPY) -m pytest tests $(PYTEST_ARGS)

test-one:
	@test -n "$(T)" || { echo 'usage: make test-one T=tests/test_x.py::test_name  (or T="tests -k words")'; exit 2; }
	$(VPY) -m pytest $(T) -q -rs -p no:cacheprovider

# --- benchmarks --------------------------------------------------------------

# The anchor venv the tests keep for this interpreter (tests/conftest.py names it).
ANCHOR_VENV = $(or $(INFINIUM_TEST_CACHE),$(HOME)/.cache/infinium-tests)/anchor-venv-py$(shell $(VPY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

bench:
	cd /tmp && $(VPY) $(CURDIR)/benches/run.py

bench-smoke:
	cd /tmp && $(VPY) $(CURDIR)/benches/run.py --quick --only serialize,sequential,import \
		--anchor-venv "$(ANCHOR_VENV)"

ci: lint test-rust typecheck docs bench-smoke test
