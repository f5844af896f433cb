# The Sec. 3.1 training chain of one config (prototxt_gen/chain.py, issue 5): A at S=256 -> the
# deeper net initialised from A -> S=256 -> S=384 (from S=256, lr 1e-3) -> S in [256, 512]
# (fine-tuned from S=384), each stage's final snapshot feeding the next.
#   make chain CONFIG=D [PROFILE=mini] [GPUS=4] [BATCH=] [INIT=] [LR_POLICY=] [DATA=]   print + status
#   make chain CONFIG=D RUN=1 [FROM=D:S384]                                                run / resume
# The knobs are `make net`'s, so the chain expects the files that `make net` wrote with them.
# Defaults live in `vgg-chain --help`, not here: an unset knob passes no flag.
CHAIN_FLAGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(GPUS),--gpus $(GPUS)) $(if $(BATCH),--batch $(BATCH)) \
              $(if $(INIT),--init $(INIT)) $(if $(LR_POLICY),--lr-policy $(LR_POLICY)) \
              $(if $(DATA),--data "$(DATA)") $(if $(filter-out 0,$(RUN)),--run) $(if $(FROM),--from "$(FROM)")

.PHONY: chain

chain: $(SETUP_STAMP) ## the Sec. 3.1 stages of CONFIG=D (A S256 -> init from A -> S256 -> S384 -> S256-512) and their status; RUN=1 runs/resumes them [FROM=stage]
	@$(PY) -m prototxt_gen.chain $(CONFIG) $(CHAIN_FLAGS)
