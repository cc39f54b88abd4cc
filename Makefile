# sidlive: two commands on a fresh Debian machine with Python 3.11 —
#   make demo   set up .venv + system packages, run the main job on shipped defaults
#   make test   the same setup plus what tests need, then the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEMO_OUT ?= out/demo
# System packages: audio output for everything; JACK, GoatTracker (fixture songs),
# sidplayfp (sound check) and Chromium (the studio's page, driven by Playwright) for the tests.
APT_RUN := libportaudio2
APT_TEST := $(APT_RUN) jackd2 goattracker sidplayfp chromium

.PHONY: demo test sysdeps-run sysdeps-test venv-run venv-test clean

demo: sysdeps-run $(VENV)/.stamp-run
	$(VPY) -m sidlive.commands.demo --out $(DEMO_OUT)

test: sysdeps-test $(VENV)/.stamp-test
	JACK_NO_AUDIO_RESERVATION=1 $(VPY) -m pytest -q tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# Install missing Debian packages as root; otherwise print the exact command and stop.
define apt_ensure
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "run:  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

sysdeps-run:
	$(call apt_ensure,$(APT_RUN))

sysdeps-test:
	$(call apt_ensure,$(APT_TEST))

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	$(VPY) -m pip install -q -e '.[studio]'
	touch $@

# torch==2.13.0 exactly: the CPU wheel (other specs pull gigabytes of CUDA packages).
$(VENV)/.stamp-test: pyproject.toml | $(VENV)/bin/python
	$(VPY) -m pip install -q -e '.[train,test,studio]'
	touch $@ $(VENV)/.stamp-run

clean:
	rm -rf $(VENV) out .pytest_cache
