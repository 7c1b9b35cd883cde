# The two commands a newcomer needs: `make run` (the whole stack locally) and `make test` (everything CI runs).
# Both install what they need on a fresh machine of this kind (Rust toolchain + Python 3 present).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export CARGO_TERM_COLOR ?= never

.PHONY: test run lint unit tools fmt

# The test run comes last so its closing line ("tests: N passed, M failed") ends the output.
test: tools lint
	scripts/validate-template.sh
	scripts/build-lambdas.sh
	scripts/run-tests.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Python tools live in the project's own virtualenv, never in the system Python (the SAM CLI has one
# of its own, .venv-sam, made by scripts/validate-template.sh: it pins versions that clash).
tools: $(VENV)/.installed

$(VENV)/.installed: scripts/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
	touch $@

# The whole stack on http://127.0.0.1:$${PORT:-3000}, fed with the sample exceptions (DEMO=0: not).
run: tools
	cargo build -p flowback-local
	scripts/with-moto.sh target/debug/flowback-local
