# Two commands matter: `make demo` (install, deploy locally, run the workflows) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.13
VENV := .venv
BIN := $(VENV)/bin
# checkov pins boto3 exactly, against the emulator's botocore pin: it gets an environment of its own.
CHECKOV_VENV := .venv-checkov
# The emulator runs the handlers with its own interpreter: it gets an environment as lean as Lambda's runtime
# (ministack, boto3, botocore; requirements-emulator.in says why).
EMULATOR_VENV := .venv-emulator
# --skip-download: no call to checkov's vendor; the update check would ask PyPI on every run.
# checkov does not expand AWS::LanguageExtensions' Fn::ForEach (it would not see the looped resources), so it
# scans the expansion of template.yaml: every resource under its logical id, with its Metadata skips.
CHECKOV_TEMPLATE := .aws-sam/checkov/template.yaml
CHECKOV_SCAN := $(CHECKOV_VENV)/bin/python scripts/sam_template.py --expand $(CHECKOV_TEMPLATE) && \
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download \
	--framework cloudformation --file $(CHECKOV_TEMPLATE)
# The emulator's port: EMULATOR_PORT when given, else the one `make up` recorded in .emulator/current-port
# (so `make env`, `make down` and `make demo` follow an emulator started with EMULATOR_PORT=N), else 4566.
ifeq ($(origin EMULATOR_PORT),undefined)
EMULATOR_PORT := $(or $(shell grep -xE '[0-9]{1,5}' .emulator/current-port 2>/dev/null),4566)
endif
STACK_NAME ?= mock-payment-workflow-stack
# Test workers (pytest-xdist). The integration tests mostly wait (on hooks due in compressed days, on a
# lapsed lease, on the reconciler's grace), so four workers, each with an emulator and a stack of its own,
# overlap those waits on two cores; an idle worker takes tests from a busy one (worksteal). More workers
# would overlap more waits, but each deploys and warms a stack of its own, and the cores are busy from the
# load tests' end on: while this 2-core machine was shared, six workers took 389-460 s and four 327-336 s
# (runs one after another); side by side on a quiet machine both took about five minutes. The two `load`
# tests run while no other test does, the `long` ones are spread through the run
# (tests/support/machine.py). PARALLEL= runs everything in one process.
PARALLEL ?= -n 4 --dist worksteal

# Everything that talks to the emulator: dummy credentials, one region, the endpoint override.
LOCAL_ENV := AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
	AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://localhost:$(EMULATOR_PORT) SAM_CLI_TELEMETRY=0 \
	PATH="$(CURDIR)/$(BIN):$$PATH"

# up, demo and bench deploy samconfig `local`'s test-only settings, and LOCAL_ENV replaces the caller's
# AWS_ENDPOINT_URL (so scripts/stack.py never sees it): one that is not local stops make before anything runs.
ifneq ($(and $(filter up demo bench,$(MAKECMDGOALS)),$(AWS_ENDPOINT_URL)),)
ifneq ($(shell url='$(subst ','\'',$(AWS_ENDPOINT_URL))'; \
	[[ $$url =~ ^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?([/?\#].*)?$$ ]] && echo local),local)
$(error refusing to deploy: AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL) is not a local address (localhost, 127.0.0.1, [::1]). \
	`make up`, `make demo` and `make bench` deploy test-only settings (FaultInjection=enabled, OffsetUnitSeconds=3) \
	to the local emulator only: unset AWS_ENDPOINT_URL, or deploy to AWS with `sam build && sam deploy`)
endif
endif

.PHONY: help environments run-environments venv checkov-venv emulator-venv lock up down demo test lint checkov unit integration load env clean diagrams openapi cost cost-readme bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{gsub(/\$$\$$/, "$$", $$2); printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  Emulator port: $(EMULATOR_PORT) (EMULATOR_PORT=N on any target to choose; \`make up\` records it in .emulator/current-port)"

# uv fills the environments from their lock files: it fetches and unpacks packages side by side, where pip
# takes them one at a time (.venv and .venv-emulator from an empty cache: about 20 s, pip about 40 s). It is
# pinned with its hashes in requirements-uv.lock, and installed from PyPI with pip into an environment of its
# own. UV_COMPILE_BYTECODE: uv, unlike pip, writes no .pyc files unless asked, and then every emulator worker,
# CLI call and test process compiles what it imports, and again each time where PYTHONDONTWRITEBYTECODE is set.
UV_VENV := .venv-uv
UV := UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 $(UV_VENV)/bin/uv
UV_INSTALLED := $(UV_VENV)/bin/.installed

# Every lock file pins each package by version and by the SHA-256 of its files, and every install requires
# those hashes (pip's and uv's --require-hashes): a file on the index that is not the one locked, whoever put
# it there, fails the install before anything of it runs.
$(UV_INSTALLED): requirements-uv.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.13 (pyenv reads .python-version)"; exit 1; }
	@echo "$(UV_VENV): exactly requirements-uv.lock, installed with pip"
	@$(PYTHON) -m venv $(UV_VENV)
	@$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		--requirement requirements-uv.lock
	@touch $@

# The recipe of each environment: $(1) created with Python 3.13 and filled with exactly the lock file $(2).
# Nothing else: no --seed (it would add an unlocked pip; the dev lock holds the pip `sam build` runs);
# --allow-existing lets a changed lock file update an environment in place (sync also removes what the lock
# file no longer lists).
define create-venv
	@echo "$(1): exactly $(2), installed with uv"
	@$(UV) venv --quiet --allow-existing --python $(PYTHON) $(1)
	@VIRTUAL_ENV=$(1) $(UV) pip sync --quiet --require-hashes $(2)
	@touch $@
endef

$(BIN)/.installed: requirements-dev.lock | $(UV_INSTALLED)
	$(call create-venv,$(VENV),requirements-dev.lock)

venv: $(BIN)/.installed ## Create the Python 3.13 dev environment from the lock file
	@: # a recipe of its own (here and below), so that an environment already there prints nothing

$(CHECKOV_VENV)/bin/.installed: requirements-checkov.lock | $(UV_INSTALLED)
	$(call create-venv,$(CHECKOV_VENV),requirements-checkov.lock)

checkov-venv: $(CHECKOV_VENV)/bin/.installed ## Create .venv-checkov (checkov alone) from requirements-checkov.lock
	@:

$(EMULATOR_VENV)/bin/.installed: requirements-emulator.lock | $(UV_INSTALLED)
	$(call create-venv,$(EMULATOR_VENV),requirements-emulator.lock)

emulator-venv: $(EMULATOR_VENV)/bin/.installed ## Create .venv-emulator (the emulator and the handlers' boto3) from requirements-emulator.lock
	@:

# One resolution for every platform (--universal: the locks serve Linux and macOS laptops alike), for Python
# 3.13. uv keeps the versions a lock file already pins unless the .in file no longer allows them; `make lock
# LOCK_OPTIONS=--upgrade` moves every pin to the newest version allowed. The emulator's lock is constrained by
# the dev lock (the versions both hold are the same); the layer's lists its packages without their dependencies
# (the Lambda runtime provides boto3's; src/layers/common/requirements.in says why).
LOCK_OPTIONS ?=
UV_LOCK = $(UV) pip compile --quiet --universal --python-version 3.13 --python $(PYTHON) --generate-hashes \
	--custom-compile-command "make lock" $(LOCK_OPTIONS)
# $(1) resolved into the lock file $(2), with the options $(3). uv reads the pins to keep from the file it
# writes, so it writes a copy of the lock, which replaces the lock only when its content differs: a lock that
# does not change keeps its timestamp, and make does not install the environments or build the layer again.
define lock-file
	@cp $(2) $(2).new 2>/dev/null || true
	@$(UV_LOCK) $(3) $(1) --output-file $(2).new || { rm -f $(2).new; exit 1; }
	@if cmp -s $(2).new $(2); then rm $(2).new; echo "$(2): unchanged"; else mv $(2).new $(2); echo "$(2): written"; fi
endef
lock: | $(UV_INSTALLED) ## Resolve every requirements .in file into its lock file, each package with its hashes
	$(call lock-file,requirements-dev.in,requirements-dev.lock)
	$(call lock-file,requirements-emulator.in,requirements-emulator.lock,--constraints requirements-dev.lock)
	$(call lock-file,requirements-checkov.in,requirements-checkov.lock)
	$(call lock-file,requirements-uv.in,requirements-uv.lock)
	$(call lock-file,src/layers/common/requirements.in,src/layers/common/requirements.txt,--no-deps)

up: run-environments ## Start the local emulator (or reuse one), build, deploy, repair drift, warm up, print the stack outputs
	@$(LOCAL_ENV) $(BIN)/python scripts/stack.py up --port $(EMULATOR_PORT) --stack-name $(STACK_NAME)

down: venv ## Stop the emulator this project started (by its recorded PID)
	@$(BIN)/python scripts/emulator.py stop --port $(EMULATOR_PORT)

demo: up ## Install, deploy locally and run the workflows on the sample events
	@$(LOCAL_ENV) $(BIN)/python scripts/demo.py --port $(EMULATOR_PORT) --stack-name $(STACK_NAME)

# SAM_CLI_POLL_DELAY: sam deploy and sam sync poll the emulator every 0.5 s instead of 5 (scripts/stack.py's
# local_environment, which `make up` and the tests deploy with, says why).
env: ## Print the exports that point the aws and sam CLIs at the emulator: eval "$$(make -s env)"
	@echo 'export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1'
	@echo 'export AWS_ENDPOINT_URL=http://localhost:$(EMULATOR_PORT) SAM_CLI_TELEMETRY=0 SAM_CLI_POLL_DELAY=0.5'
	@echo 'export PATH="$(CURDIR)/$(BIN):$$PATH"'

# The environments share nothing, and each install spends part of its time waiting on the network: side by
# side they are ready sooner than one after the other. Running the stack and its tests needs two of them; lint, all three.
# (-f, here and in `test`: the sub-make reads this Makefile wherever it is started from.)
run-environments:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) -j2 venv emulator-venv

environments:
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) -j3 venv checkov-venv emulator-venv

lint: environments ## ruff, cfn-lint and checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV_SCAN)

checkov: checkov-venv ## Static security scan of template.yaml, loops expanded (skips carry their reason in Metadata)
	@$(CHECKOV_SCAN)

unit: venv ## Unit tests only (no network)
	$(BIN)/pytest tests/unit -q

integration: run-environments ## Integration tests only (a fresh emulator per test worker, each on a free port)
	$(BIN)/pytest tests/integration -q $(PARALLEL)

load: run-environments ## only the two 50-client tests (marked `load`; both are part of `make test` too), on a fresh emulator
	$(BIN)/pytest -q -s tests/integration/test_concurrency.py \
		tests/integration/test_enrollment_api.py::test_concurrent_requests_for_one_contract_enroll_exactly_once

# Lint needs no emulator and the tests leave the cores idle now and then (while they wait on hooks and
# leases): it runs beside them at the lowest CPU priority, so it takes only what they leave. Its output
# follows theirs; either failing fails the target.
test: run-environments ## Every test: lint (beside the tests, at the lowest CPU priority), unit, integration
	@mkdir -p .aws-sam
	@nice -n 19 $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) lint > .aws-sam/lint.log 2>&1 & linting=$$!; \
	$(BIN)/pytest -q $(PARALLEL); tested=$$?; \
	wait $$linting; linted=$$?; \
	echo "== make lint (ran beside the tests)"; cat .aws-sam/lint.log; \
	[ $$linted = 0 ] || echo "make lint failed: see above"; \
	exit $$(( tested || linted ))

diagrams: venv ## Re-render docs/architecture.md's state machine diagrams from statemachine/*.asl.json
	$(BIN)/python scripts/asl_diagram.py

openapi: venv ## Write openapi/enrollment-api.json from template.yaml's API and the request model
	$(BIN)/python scripts/openapi.py

bench: run-environments ## Benchmark on a fresh emulator; writes bench/results/latest.{json,md}
	$(LOCAL_ENV) $(BIN)/python scripts/bench.py

cost: venv ## Cost per million enrollments and payment workflows at AWS list prices
	$(BIN)/python scripts/cost_model.py

cost-readme: venv ## Rewrite docs/performance-and-cost.md's table of cost levers from the cost model
	$(BIN)/python scripts/cost_model.py --readme

clean: ## Remove build output (keeps the venv)
	rm -rf .aws-sam packaged.yaml .pytest_cache .ruff_cache
