# seedance-s3-pipeline: every target creates what it needs on a fresh machine (Python 3.11 + pip).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
export AWS_DEFAULT_REGION ?= us-east-1
# sam build needs the Lambda runtime's Python (3.13); pyenv provides it beside the machine's 3.11.
export PYENV_VERSION ?= $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare | grep -E '^3\.11' | tail -1):$(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare | grep -E '^3\.13' | tail -1)
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# setuptools says on every editable install that folders named like a package may shadow it: advice for people
# who run Python from the source tree, which we want (the tests put the source roots first on purpose).
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"
PYTEST_ARGS ?=
# make test spreads the tests over worker processes, a test file to a worker (its module fixtures start once): most
# integration tests wait on moto and the simulator, not on the CPU. PYTEST_WORKERS=0 runs them in one process.
# Files go out in collection order, not largest first: the slowest files hold one test each (the bench smoke test,
# minutes long) and would otherwise start last, with the other worker idle.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder
# Lambda runs python3.13: where pyenv has it, the unit and contract tests run on it too (else they are skipped).
PY313 ?= $(shell command -v pyenv >/dev/null 2>&1 && v=$$(pyenv versions --bare | grep -E '^3\.13' | tail -1) && [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin/python3")
VENV313 := .venv-py313
# The real AWS CLI for the documented walkthrough (tests/integration/test_readme_walkthrough.py): awscli pins botocore
# exactly, so it has an environment of its own. The test takes the same lock, so it waits for an install under way.
AWSCLI := .venv-awscli

.PHONY: help docs demo test test-main lambda-python-env awscli-env test-lambda-python test-lambda-python-beside unit integration check lint typecheck template-checks build bench clean run fuzz

help:
	@echo "make demo   - run the pipeline on the embedded stack (moto + simulator); videos land in ./out/demo/"
	@echo "make test   - create the environment and run the whole test suite (+ sam validate/build)"
	@echo "make check  - ruff, mypy, the docs site (--strict), layer pins vs pyproject.toml, sam validate --lint, cfn-lint, checkov"
	@echo "make docs   - the documentation site (mkdocs --strict) into ./site/"
	@echo "make bench  - benchmarks against baselines measured in the same run"
	@echo "make build  - sam build (python3.13, arm64)"
	@echo "make fuzz   - the generated (Hypothesis) suites with many more examples than make test runs"
	@echo "make unit   - unit tests only (in-memory fakes, no network)"
	@echo "make integration - integration tests only (moto server + simulator over real HTTP)"
	@echo "make run IMAGES='a.jpg b.png' - turn your own images into videos on the embedded stack"
	@echo "make clean  - remove the environments and build output"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The demo needs only the simulator and the local stack; the tests add their tools on top.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(QUIET_EDITABLE) $(PY) -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(PY)
	$(QUIET_EDITABLE) $(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

# SAM CLI and checkov pin many packages of their own, so they live in a second environment.
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q 'aws-sam-cli>=1.120' 'checkov>=3.2' 'cfn-lint>=1.10'
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/seedance-pipeline demo --out out

run: $(VENV)/.demo-installed
	$(VENV)/bin/seedance-pipeline run $(IMAGES)

# The Lambda runtime's environment (.venv-py313, ~2.5 min of installs on a fresh clone) and the AWS CLI's are made
# while the main suite runs, and the py313 step runs beside it on one worker as soon as its environment is ready:
# the main suite's integration tests spend much of their time waiting on moto and the simulator (its processes used
# ~1,000 CPU seconds, of the ~1,540 two cores give in its ~770 s), CPU the py313 step's unit tests can use.
test: $(VENV)/.installed template-checks build
	$(MAKE) --no-print-directory -j3 test-main test-lambda-python-beside awscli-env

test-main: $(VENV)/.installed
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The same unit and store-contract tests on the Lambda runtime's Python, in an environment of its own (remade when
# pyproject.toml changes, as .venv is).
ifeq ($(PY313),)
lambda-python-env:
test-lambda-python test-lambda-python-beside:
	@echo "python3.13 not found (pyenv): unit tests on the Lambda runtime's Python skipped"
else
lambda-python-env: $(VENV313)/.installed

# The store contract goes first: on moto it is the step's longest file, so it starts while the other worker takes
# the unit tests, rather than last with the other worker idle.
test-lambda-python: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest -q $(XDIST) tests/integration/test_job_store_contract.py tests/unit $(PYTEST_ARGS)

# make test's way: one worker, its output in a log (the main suite prints its progress meanwhile), shown when it
# ends: the summary when it passed, all of it when it failed.
test-lambda-python-beside: $(VENV313)/.installed
	@$(MAKE) --no-print-directory test-lambda-python PYTEST_WORKERS=1 > $(VENV313)/tests.log 2>&1; rc=$$?; \
		echo "== python3.13 (the Lambda runtime): unit and store-contract tests, log in $(VENV313)/tests.log"; \
		if [ $$rc -eq 0 ]; then tail -n 1 $(VENV313)/tests.log; else cat $(VENV313)/tests.log; fi; exit $$rc

# Quiet while the main suite prints its progress: the install's output goes to a log, shown if it fails.
$(VENV313)/.installed: pyproject.toml
	@[ -x $(VENV313)/bin/python ] || $(PY313) -m venv $(VENV313)
	@$(QUIET_EDITABLE) $(VENV313)/bin/pip install -q -e '.[dev]' > $(VENV313)/install.log 2>&1 \
		|| { cat $(VENV313)/install.log; exit 1; }
	@touch $@
endif

awscli-env: $(AWSCLI)/.installed

# Quiet, as the py313 install is; flock: the walkthrough's fixture waits on the same lock rather than installing too.
$(AWSCLI)/.installed:
	@flock $(AWSCLI).lock sh -c '[ -f $@ ] || { { [ -x $(AWSCLI)/bin/python ] || $(PYTHON) -m venv $(AWSCLI); } \
		&& $(AWSCLI)/bin/pip install -q awscli > $(AWSCLI)/install.log 2>&1 && touch $@; } \
		|| { cat $(AWSCLI)/install.log 2>/dev/null; exit 1; }'

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# CI runs make check, then make test: the template is linted once for each version of it (and of the tools).
template-checks: $(TOOLS)/.template-checked

$(TOOLS)/.template-checked: template.yaml $(TOOLS)/.installed
	$(TOOLS)/bin/sam validate --lint --template template.yaml
	touch $@

# --cached: a function or layer whose source and requirements did not change since the last build is not rebuilt.
build: $(TOOLS)/.installed
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" $(TOOLS)/bin/sam build --template template.yaml --parallel --cached
	$(PY) -m seedance_local.footprint .aws-sam/build

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# The site: the generated pages (parameters from template.yaml, models from the catalogue) are rewritten first, then
# mkdocs builds with --strict, so a link to a missing page or anchor fails. Offline: nothing is fetched.
docs: $(VENV)/.installed
	$(PY) -m seedance_local.docs_pages
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# sam build installs layers/common/requirements.txt, never pyproject.toml: the pins must stay within its ranges.
# The docs are built with the generated pages compared, not rewritten: a stale page fails the check.
check: lint typecheck template-checks $(TOOLS)/.installed
	$(PY) -m seedance_local.docs_pages --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
	$(PY) -m seedance_local.check_layer_pins
	$(TOOLS)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

# The same generated suites as make test, with the "fuzz" Hypothesis profile: many times the examples. Without the
# per-test timeout: 5,000 examples of one lifecycle machine take far longer than make test's 300 s.
fuzz: $(VENV)/.installed
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m generated --timeout=0 $(PYTEST_ARGS)

bench: $(VENV)/.installed build
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(VENV313) $(TOOLS) $(AWSCLI) $(AWSCLI).lock .aws-sam out site .pytest_cache .mypy_cache .ruff_cache
