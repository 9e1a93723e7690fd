# minerd — the two commands an operator needs are `make demo` and `make test`.
# Each bootstraps a fresh machine on its own: a .venv with minerd and its dev tools.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv deps lint typecheck layers test test-fast demo bench clean

# Directories whose tests wait on sockets, servers and timers: `make test` runs them a second
# time in random order (pytest-randomly, seed printed) to catch order-dependent tests.
RANDOM_ORDER_TESTS := tests/transports tests/sinks tests/fleet tests/alerts tests/storage

help:
	@echo "make demo   run a simulated site with the daemon (status page URL and tokens printed)"
	@echo "make test   install what is missing, then ruff, mypy --strict, import layers, pytest"
	@echo "            (the suite, then the scenarios on their own, then $(RANDOM_ORDER_TESTS)"
	@echo "            in random order)"
	@echo "make test-fast  pytest without the slow scenario tests (real daemon on a simulated site)"
	@echo "make bench  run the benchmarks (ratios against baselines measured in the same run)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Real servers the tests talk to (Debian packages); installs only what is missing, as root.
deps:
	@bash scripts/install-test-servers.sh

lint: $(STAMP)
	$(BIN)/ruff check minerd tests benchmarks
	$(BIN)/ruff format --check minerd tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# Two workers, each file on one of them (a module fixture, such as a simulated rig at the
# firmware's fixed port, exists once). Most of the suite waits on simulated time, not CPU,
# so this halves the wall time on a 2-core machine. The scenarios (the real daemon on a
# simulated site in real time, marked slow) run after the rest, not beside a headless
# browser or a database server starting up: a starved scenario judges the machine, not
# minerd. The scenarios marked `alone` (energy judged over two-minute intervals at 20x
# speed, where a one-second stall is 20 sim seconds; a ramp judged over 5 sim s at 10x; the
# healthy site's 98.5 % of its limit) then run with nothing beside them.
test: $(STAMP) deps lint typecheck layers
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not slow"
	$(BIN)/pytest -q -n 2 --dist loadfile -m "slow and not alone"
	$(BIN)/pytest -q -m alone
	$(BIN)/pytest -p randomly $(RANDOM_ORDER_TESTS)  # not -q: the header names the seed

test-fast: $(STAMP) deps
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/minerd demo

bench: $(STAMP) deps
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
