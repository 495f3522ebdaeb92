# strongpose_ros: the commands a newcomer runs. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := . ./env.sh

.PHONY: help setup test lint bench clean

help:
	@echo "make setup   virtual environment (ROS 2 Kilted wheels, torch), colcon build, env.sh (idempotent)"
	@echo "make test    set-up, then lint and the whole test suite"
	@echo "make lint    ruff"
	@echo "make bench   the benchmarks (figures printed; never part of the tests)"
	@echo "make clean   remove the build workspace (.ws) and caches; keeps .venv"

setup:
	@bash tools/setup.sh

lint: setup
	@$(ENV) && ruff check .

test: setup
	@$(ENV) && ruff check . && python -m pytest

.PHONY: demo
# The README's main job: source + pose node on the bundled clip and weights; results in ./demo_output/.
demo: setup
	@$(ENV) && strongpose demo

bench: setup
	@$(ENV) && for b in bench/*.py; do echo "== $$b"; python "$$b" || exit 1; done

clean:
	rm -rf .ws .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
