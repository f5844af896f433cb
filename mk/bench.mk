# Benchmarks (bench/, issue 8): our Caffe against PyTorch per config, the GEMM limit, vgg-data against
# convert_imageset, the training data layer per core, dense against multi-crop; one run, this machine.
#   make bench [BENCH_FLAGS="--configs A D --eval-images 2"]    (python -m bench.run --help)
# PyTorch is a benchmark-only extra, not a project dependency: installed here when missing
# (torch==2.13.0 lies on this machine's disk; pip takes it from there).
BENCH_TORCH_VERSION = 2.13.0

.PHONY: bench bench-deps

bench-deps: $(SETUP_STAMP) ## install the benchmark-only extra (PyTorch) into the venv when missing
	@$(PY) -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$(BENCH_TORCH_VERSION)')" 2>/dev/null \
	  || $(PY) -m pip install --quiet --disable-pip-version-check "torch==$(BENCH_TORCH_VERSION)"

bench: bench-deps ## Caffe vs PyTorch, GEMM limit, data, dense vs multi-crop -> bench/results.md, .json (~10 min)
	$(PY) -m bench.run $(BENCH_FLAGS)
