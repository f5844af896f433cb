# Evaluation (evaluation/, issue 6): the testing protocols of Sec. 3.2 and 4, reported as Tables 3-6.
#   make eval MODEL=D WEIGHTS=w.caffemodel ROOT=images/ LIST=val.txt [PROTOCOL=dense|multicrop|both]
#             [SCALES="256 384 512"] [TRAIN_S=256-512] [OUT=build/eval/D] [EVAL_BATCH=10] [MEAN=stats.json]
#             [CLASSES=1000] [LIMIT=N]
# Defaults live here, not in ?= assignments: OUT and friends are other fragments' knobs too.
EVAL_OUT   = $(or $(OUT),build/eval/$(notdir $(basename $(MODEL))))
EVAL_FLAGS = --protocol $(or $(PROTOCOL),both) --out "$(EVAL_OUT)" \
             $(if $(SCALES),--scales "$(SCALES)") $(if $(TRAIN_S),--train-scale $(TRAIN_S)) \
             $(if $(EVAL_BATCH),--batch-size $(EVAL_BATCH)) $(if $(MEAN),--mean "$(MEAN)") \
             $(if $(CLASSES),--num-classes $(CLASSES)) $(if $(LIMIT),--limit $(LIMIT))

.PHONY: eval eval-report eval-caffe-net

eval: $(SETUP_STAMP) ## evaluate MODEL (config or prototxt) with WEIGHTS on ROOT/LIST: OUT/report.md, results.csv, posteriors
	@$(PY) -m evaluation run --model "$(MODEL)" --weights "$(WEIGHTS)" --root "$(ROOT)" --list "$(LIST)" $(EVAL_FLAGS)

eval-report: $(SETUP_STAMP) ## Tables 3-6 with ensembles, from saved runs only: RUNS="build/eval/D build/eval/E" OUT=build/eval/D+E
	@$(PY) -m evaluation report $(RUNS) --out "$(or $(OUT),build/eval/report)"

eval-caffe-net: $(SETUP_STAMP) ## dense test net for `caffe test`: MODEL=D Q=384 [WEIGHTS=w.caffemodel] [SOURCE=lmdb]
	@$(PY) -m evaluation caffe-net --model "$(MODEL)" --scale "$(Q)" $(if $(WEIGHTS),--weights "$(WEIGHTS)") \
	  $(if $(SOURCE),--source "$(SOURCE)") $(if $(MEAN),--mean "$(MEAN)") $(if $(CLASSES),--num-classes $(CLASSES))
