# wgtrack: the two commands of the README are `make demo` and `make test` (as root, Debian 12).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# --no-install-recommends: wireguard-tools would otherwise pull in a kernel image.
# The demo needs only the lab; the tests also need the real servers and the packaging tools.
LAB_PACKAGES := python3 python3-venv wireguard-tools wireguard-go dnsmasq-base nftables iproute2 \
	util-linux iputils-ping
SYSTEM_PACKAGES := $(LAB_PACKAGES) influxdb prometheus prometheus-alertmanager victoria-metrics openssl ca-certificates systemd \
	debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools build-essential fakeroot lintian \
	python3-dnspython python3-prometheus-client python3-yaml python3-bcrypt \
	python3-pytest python3-hypothesis python3-jsonschema chromium debootstrap systemd-container podman runc iptables

.PHONY: help system-deps lab-deps apt-install venv test unit lab check demo bench deb clean

help:
	@echo "make demo   - build a WireGuard lab in network namespaces and watch wgtrack track it (root)"
	@echo "make test   - install what is needed and run the whole suite, unit and lab (root)"
	@echo "make check  - ruff and mypy"

system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(SYSTEM_PACKAGES)"

lab-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(LAB_PACKAGES)"

apt-install:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,dev,prometheus]'

test: system-deps venv
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest -m 'not lab and not server'

check: venv
	$(BIN)/ruff check wgtrack tests bench
	$(BIN)/mypy wgtrack tests bench

# The demo runs wgtrack and the lab helpers only: its venv gets wgtrack's runtime dependencies,
# not the test and lint tools.
demo: lab-deps $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e .
	$(BIN)/python -m tests.demo

bench: system-deps venv
	@$(MAKE) --no-print-directory apt-install PACKAGES="fping"
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.hub
	$(BIN)/python -m bench.scrape
	$(BIN)/python -m bench.probes
	$(BIN)/python -m bench.flood
	$(BIN)/python -m bench.netns
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.quality

deb:
	PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
