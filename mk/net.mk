# Network and solver generators (prototxt_gen/, issue 3): Table 1 and the Sec. 3.1 recipe as Caffe files.
GPUS      ?= 4
INIT      ?= gaussian
LR_POLICY ?= plateau
NET_TIME_BATCH ?= 8
NET_TIME_ITER  ?= 3
# Optional knobs, passed on only when set: BATCH (per GPU), DATA (make data's OUT root), STATS.
NET_FLAGS = --gpus $(GPUS) --init $(INIT) --lr-policy $(LR_POLICY) \
            $(if $(BATCH),--batch $(BATCH)) $(if $(DATA),--data $(DATA)) $(if $(STATS),--stats $(STATS))

.PHONY: net nets net-time

net: $(SETUP_STAMP) ## write models/CONFIG/ and solvers/CONFIG*.prototxt (CONFIG=E [GPUS=4] [BATCH=] [INIT=gaussian|xavier] [DATA=dir])
	@$(PY) -m prototxt_gen $(CONFIG) $(NET_FLAGS)

nets: $(SETUP_STAMP) ## write the files of every config (A, A-LRN, B, C, D, E, B-5x5)
	@$(PY) -m prototxt_gen --all $(NET_FLAGS)

net-time: $(SETUP_STAMP) ## caffe time of a config's training net, forward and backward (CONFIG=D [NET_TIME_BATCH=8])
	@$(PY) -m prototxt_gen.timing $(if $(CONFIG),$(CONFIG),A A-LRN B C D E B-5x5) \
	  --batch $(NET_TIME_BATCH) --iterations $(NET_TIME_ITER)
