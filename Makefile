# The README's commands. `make demo` runs the main job on the embedded defaults;
# `make test` installs what the tests need and runs the whole suite with the linters.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MOSQUITTO := $(shell command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: test demo lint typecheck system-deps build-deps native venv clean bench

test: venv system-deps native lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# The whole path on this machine (Mosquitto installed where missing); DEMO_ARGS for its options
DEMO_ARGS ?=
demo: venv native
ifeq ($(MOSQUITTO),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto
	@# the package starts a system Mosquitto on 1883; the demo runs its own
	-$(SUDO) systemctl disable --now mosquitto 2>/dev/null
endif
	$(BIN)/drehscheibe demo $(DEMO_ARGS)

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv python3-pip; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# Debian packages the tests need, where missing: Mosquitto, and headless Chromium for the page
SYSTEM_PACKAGES := $(strip $(if $(MOSQUITTO),,mosquitto) \
	$(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(wildcard /usr/bin/chromedriver),,chromium-driver))

system-deps:
ifneq ($(SYSTEM_PACKAGES),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES)
endif

# The agent's hot path compiled with mypyc (tools/native.py; only what changed is rebuilt).
# NATIVE=0 removes the compiled modules, and everything runs as plain Python.
NATIVE ?= 1
ifeq ($(NATIVE),0)
native: venv
	$(BIN)/python tools/native.py clean
else
native: venv build-deps
	$(BIN)/python tools/native.py build
endif

# What mypyc's C needs, where missing: a C compiler and the headers of $(PYTHON)
PYTHON_H := $(shell $(PYTHON) -c 'import os, sysconfig; print(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null)
BUILD_PACKAGES := $(strip $(if $(shell command -v gcc),,gcc) \
	$(if $(wildcard $(PYTHON_H)),,python3-dev))

build-deps:
ifneq ($(BUILD_PACKAGES),)
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BUILD_PACKAGES)
endif

bench: venv
	$(BIN)/python -m benchmarks

clean:
	-$(BIN)/python tools/native.py clean
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
