# podsec — developer and CI entry points. Run as root on Debian 12.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
K8S_VERSION := $(shell cat scripts/k8s/VERSION)
export PATH := $(CURDIR)/$(BIN):/var/cache/podsec-dev/kubernetes/$(K8S_VERSION)/current/bin:$(PATH)
PYTEST_UNIT ?= -q
PYTEST_REAL ?= -q
PYTEST_PKG ?= -q

.PHONY: help deps deps-debian deps-kubernetes deps-images venv locale lint test test-unit \
        test-real test-hostile test-packaging test-systemd deb bench demo demo-clean clean \
        _test-real _test-packaging _test-systemd

help:
	@echo "make demo   - set up this machine and run the main job"
	@echo "make test   - install dependencies, lint, run every test suite"
	@echo "make deb    - build the Debian packages (dist/deb/: podsec, podsec-k8s, podsec-k8s-rbac, podsec-inotify)"
	@echo "make deps | lint | test-unit | test-real | test-packaging | test-systemd | bench | demo-clean"

deps: deps-debian venv deps-kubernetes deps-images

deps-debian:
	scripts/install-deps

deps-kubernetes: deps-debian
	@if [ -x scripts/build-kubernetes ]; then scripts/build-kubernetes; fi

deps-images: deps-kubernetes
	@if [ -x scripts/build-images ]; then scripts/build-images; fi

$(BIN)/python:
	$(PY) -m venv $(VENV)

venv: $(BIN)/python locale
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

locale:
	$(PY) scripts/msgfmt.py >/dev/null

lint: venv
	$(BIN)/ruff check src tests benchmarks packaging
	$(BIN)/ruff format --check src tests benchmarks packaging
	$(BIN)/mypy
	$(BIN)/lint-imports

# The unit suite runs with networking cut off (a new empty network namespace).
test-unit: venv
	unshare --net -- $(BIN)/pytest $(PYTEST_UNIT) tests/unit tests/conformance

# hostile input (issue 15): every command fed each class of bad input as a real process, in a
# sandbox tree, networking cut; a refusal must leave the tree byte-identical
test-hostile: venv
	unshare --net -- $(BIN)/pytest $(PYTEST_UNIT) tests/hostile

# PYTEST_REAL='-q tests/integration/test_x.py' runs only what it names (before, the whole real
# suite ran as well); without a tests/ path, both real suites
REAL_TESTS = $(if $(filter tests/%,$(PYTEST_REAL)),,tests/integration tests/e2e)

test-real: deps
	@$(MAKE) --no-print-directory _test-real

_test-real:
	PODSEC_REQUIRE_ALL=$${PODSEC_REQUIRE_ALL:-1} scripts/test-env $(BIN)/pytest $(PYTEST_REAL) $(REAL_TESTS)

# wheel + sdist, man pages, completion, the .debs (lintian) and the ALT spec; nothing as root
# outside temporary directories (tests/packaging, without the Debian-tree tests)
test-packaging: deps-debian venv
	@$(MAKE) --no-print-directory _test-packaging

_test-packaging:
	PODSEC_REQUIRE_ALL=$${PODSEC_REQUIRE_ALL:-1} $(BIN)/pytest $(PYTEST_PKG) -m "not debtree" tests/packaging

# the .debs installed in a Debian 12 tree (mmdebstrap, cached), systemd booted in it, the
# rootless node started by u7s.service (about 3 min with the tree cached, 9 without); inside
# the clean-room guard like make test's suites
test-systemd: deps
	$(GUARD) $(MAKE) --no-print-directory _test-systemd

_test-systemd:
	PODSEC_REQUIRE_ALL=$${PODSEC_REQUIRE_ALL:-1} $(BIN)/pytest $(PYTEST_PKG) --durations=5 -m debtree tests/packaging

deb: deps-debian
	scripts/build-deb

# The suites that run real programs as root run inside the clean-room guard
# (tests/machine_guard.py): it lists /etc, /usr, /var, /root, /home, /opt and the node's /run
# directories before and after them and fails the run naming every path they created, removed
# or changed outside their sandboxes (declared caches such as /var/cache/podsec-dev aside).
GUARD := $(BIN)/python -m tests.machine_guard run --

test: deps lint test-unit test-hostile
	$(GUARD) $(MAKE) --no-print-directory _test-packaging _test-real

# Every benchmark, then benchmarks/RESULTS.md (one table); BENCH='kubeapi u7s_node' runs some.
bench: deps
	$(BIN)/python benchmarks/run.py $(BENCH)

# the demo inside the guard too: its teardown must leave the machine as it found it
demo: deps
	$(GUARD) $(BIN)/python scripts/demo.py

demo-clean: venv
	$(BIN)/python scripts/demo.py --clean

clean:
	rm -rf build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
