# VGG (Simonyan & Zisserman, ICLR 2015) on patched BVLC Caffe.
# `make help` lists the targets. Area-specific targets live in mk/*.mk.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
# The venv uses Debian's interpreter: Boost.Python (libboost_python311) and pycaffe
# are built against it.
SYSTEM_PY   ?= /usr/bin/python3
# Extra flags for tools/build_caffe.py, e.g. GPU=1.
GPU         ?=
CAFFE_FLAGS := $(if $(GPU),--gpu,)
# Re-run setup only when what it depends on changed.
SETUP_STAMP := $(VENV)/.setup-complete
SETUP_DEPS  := setup.py tools/__init__.py tools/build_caffe.py tools/setup_env.py tools/openblas_core.py caffe_patches/series $(wildcard caffe_patches/*.patch)

.PHONY: help setup caffe caffe-test test pytest demo bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install system packages, build patched Caffe (cached) and the project venv .venv/
	@$(SYSTEM_PY) tools/setup_env.py --venv $(VENV) $(CAFFE_FLAGS)

$(SETUP_STAMP): $(SETUP_DEPS)
	@$(SYSTEM_PY) tools/setup_env.py --venv $(VENV) $(CAFFE_FLAGS)

caffe: ## build patched BVLC Caffe from Debian's source (GPU=1 for a CUDA build); cached
	@$(SYSTEM_PY) tools/build_caffe.py $(CAFFE_FLAGS)

caffe-test: $(SETUP_STAMP) ## run BVLC Caffe's own gtest suite (CPU tests) on the patched build
	@$(SYSTEM_PY) tools/build_caffe.py --run-tests $(CAFFE_FLAGS)

# The suite includes the benchmark's own tests, which need PyTorch (bench-deps, mk/bench.mk).
pytest: $(SETUP_STAMP) bench-deps ## the project's pytest suite alone
	$(PY) -m pytest tests

test: $(SETUP_STAMP) bench-deps ## the project's pytest suite, then Caffe's gtest suite
	$(PY) -m pytest tests
	@$(SYSTEM_PY) tools/build_caffe.py --run-tests $(CAFFE_FLAGS)

clean: ## remove generated run outputs and the venv (the Caffe build cache stays; see README)
	rm -rf $(VENV) build demo/work bench/work .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

-include $(sort $(wildcard mk/*.mk))
