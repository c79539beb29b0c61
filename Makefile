# Shortcuts; the README's two commands work without make.
.PHONY: install dev lint fast test

install:
	python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'

dev:
	.venv/bin/canvasflow dev

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports

fast:
	.venv/bin/pytest -m fast

test:
	.venv/bin/pytest
