# The two commands of README.md. Each does its own set-up on a fresh machine.
.PHONY: serve test

# Build the demo registry (sqlite, ./demo-registry/) and serve it with `mlserver start .`
# (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE: every model loads from disk; nothing is downloaded.)
serve:
	./scripts/bootstrap.sh test
	HF_HUB_OFFLINE=1 .venv/bin/python -m mlserver_sigaware.demo populate demo-registry
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/mlserver start .

# The whole test suite (unit + integration against real `mlserver start` processes).
test:
	./scripts/bootstrap.sh test
	.venv/bin/python -m pytest
