"""Build tooling: patched Caffe from Debian's source (build_caffe), its CUDA libraries (cuda_deps)
and the project venv (setup_env). Each file also runs as a script; as a package it is installed
with the others because data_prep reuses build_caffe's cache location."""
