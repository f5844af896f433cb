"""`make bench`: the project's Caffe measured against PyTorch, the machine's GEMM limit, the data
pipeline and the two testing protocols of Sec. 3.2, all in one run (bench/run.py)."""
