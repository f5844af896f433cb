# Network and solver generators (prototxt_gen/, issue 3): Table 1 and the Sec. 3.1 recipe as Caffe files.
#   make net CONFIG=E [GPUS=4] [BATCH=<per GPU>] [INIT=gaussian|xavier] [LR_POLICY=plateau|multistep]
#            [DATA=data/ilsvrc12] [STATS=<stats.json>]
#   make nets [same knobs]          make net-time [CONFIG=D] [NET_TIME_BATCH=8] [NET_TIME_ITER=3]
# Defaults live in the recipes (and in `vgg-net --help`), not in ?= assignments: GPUS, BATCH and
# DATA may be other fragments' knobs too.
NET_FLAGS = --gpus $(or $(GPUS),4) --init $(or $(INIT),gaussian) --lr-policy $(or $(LR_POLICY),plateau) \
            $(if $(BATCH),--batch $(BATCH)) $(if $(DATA),--data "$(DATA)") $(if $(STATS),--stats "$(STATS)")

.PHONY: net nets net-time

net: $(SETUP_STAMP) ## write models/CONFIG/ and solvers/CONFIG*.prototxt: CONFIG=E [GPUS=4] [BATCH=] [INIT=gaussian|xavier] [DATA=dir]
	@$(PY) -m prototxt_gen $(CONFIG) $(NET_FLAGS)

nets: $(SETUP_STAMP) ## write the files of every config (A, A-LRN, B, C, D, E, B-5x5), same knobs as `make net`
	@$(PY) -m prototxt_gen --all $(NET_FLAGS)

net-time: $(SETUP_STAMP) ## caffe time (forward, backward) of a config's training net: [CONFIG=D] [NET_TIME_BATCH=8]
	@$(PY) -m prototxt_gen.timing $(or $(CONFIG),A A-LRN B C D E B-5x5) \
	  --batch $(or $(NET_TIME_BATCH),8) --iterations $(or $(NET_TIME_ITER),3)
