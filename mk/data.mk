# Data preparation (data_prep/, issue 4): image sets to one LMDB per training scale of Sec. 3.1,
# with the training set's mean pixel and colour PCA (`vgg-data --help`).
#   make data ROOT=<image root> LIST=<list file or class-folder tree> OUT=<dir>
#             [SCALES="256 384 512"] [DATA_FLAGS="--no-shuffle ..."]
# Defaults live in the recipes, not in ?= assignments: SCALES, ROOT, LIST and OUT are other
# fragments' knobs too. Sec. 3.1: S = 256, S = 384, and 512 = the top of the jitter range.
DATA_SCALES = $(or $(SCALES),256 384 512)
FASHION_MNIST_OUT ?= data/fashion-mnist

.PHONY: data fashion-mnist bench-data

data: $(SETUP_STAMP) ## images to LMDBs + stats: ROOT=<images> LIST=<list or class tree> OUT=<dir> [SCALES="256 384 512"]
	@if [ -z "$(ROOT)" ] || [ -z "$(LIST)" ] || [ -z "$(OUT)" ]; then \
	  echo 'usage: make data ROOT=<image root> LIST=<list file or class-folder tree> OUT=<dir> [SCALES="256 384 512"] [DATA_FLAGS=...]' >&2; \
	  exit 2; fi
	$(PY) -m data_prep --root "$(ROOT)" --list "$(LIST)" --out "$(OUT)" --scales $(DATA_SCALES) $(DATA_FLAGS)

fashion-mnist: $(SETUP_STAMP) ## Fashion-MNIST (apt-get install dataset-fashion-mnist) as PNGs + list files [FASHION_MNIST_OUT= LIMIT=N]
	$(PY) -m data_prep.fashion_mnist --out "$(FASHION_MNIST_OUT)" $(if $(LIMIT),--limit $(LIMIT))

bench-data: $(SETUP_STAMP) ## benchmark vgg-data against Caffe's convert_imageset: images/s and the ratio
	$(PY) bench/data_prep_bench.py $(BENCH_DATA_FLAGS)
