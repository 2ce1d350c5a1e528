# Every habit has one entry point. `make test` and `make demo` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Node tools (CDK CLI, asl-validator, the IAM simulator of the embedded AWS), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

# Node 20 works for synthesis; jsii's banners about it would bury real output.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii wants the end-of-life majors listed by number (not a flag) before it stops shouting about them.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 18,20,22
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1

.PHONY: venv node lint test suite unit e2e infra demo bench layer synth deploy clean

venv: $(STAMP) $(NODE_STAMP)

node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The venv's bundled pip (3.11+: 23.x) installs editable pyproject projects; upgrading it first only cost a download
# and a reinstall on every fresh CI machine.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

lint: venv $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:xdist tests/unit/test_architecture.py
	CDK_OUTDIR=cdk.out $(BIN)/python app.py >/dev/null
	$(CHECKOV) --config-file .checkov.yaml

# checkov (pyproject.toml extra `checkov`) lives in a virtualenv of its own: it pins boto3 to an old release.
# It needs only the interpreter that makes it, so `make test` builds it while the project's own venv installs.
$(CHECKOV): pyproject.toml
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q "$$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["checkov"])')"
	touch $(CHECKOV)

# The two installs, then lint beside the suite: the suite leaves about a third of two cores idle (its e2e tests
# wait on the embedded AWS), which is where a cold mypy's minute and the synth go. Each target's output is
# printed whole when it ends (--output-sync), so the suite's report is not cut by lint's lines.
test:
	$(MAKE) --no-print-directory -j2 venv $(CHECKOV)
	$(MAKE) --no-print-directory -j2 --output-sync=target lint suite

# worksteal: an idle worker takes queued tests from a busy one, so the run's tail is not one worker's last e2e tests.
suite: venv
	$(BIN)/pytest -n 2 --dist worksteal -q --durations=5

e2e: venv
	$(BIN)/pytest -q -m e2e

infra: venv
	$(BIN)/pytest -q tests/infra

layer: venv
	$(BIN)/python layers/build.py

synth: venv
	$(BIN)/python app.py

deploy: venv
	npx --no-install cdk deploy --app "$(BIN)/python app.py"

unit: venv
	$(BIN)/pytest -q tests/unit

demo: venv
	$(BIN)/python -m vaultline_dev.demo

bench: venv
	$(BIN)/python bench/startup_bench.py
	$(BIN)/python bench/engine_bench.py --runs 3
	$(BIN)/python bench/workflow_bench.py
	$(BIN)/python bench/dynamodb_bench.py
	$(BIN)/python bench/lambda_worker_bench.py --mib 128 --runs 3
	$(BIN)/python bench/lambda_cost_bench.py
	$(BIN)/python bench/dynamodb_workflow_bench.py --quick
	$(BIN)/python bench/maintenance_bench.py
	$(BIN)/python bench/large_object_bench.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/table_bench.py
	$(BIN)/python bench/table_scale_bench.py
	$(BIN)/python bench/workflow_scale_bench.py

clean:
	rm -rf $(VENV) node_modules build cdk.out .pytest_cache .mypy_cache .ruff_cache
