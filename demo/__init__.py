"""`make demo`: the paper's pipeline end to end on Fashion-MNIST with the reduced profile (run_demo.py)."""
