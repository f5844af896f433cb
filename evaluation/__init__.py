"""Evaluation of trained VGG nets with the paper's testing protocols (Sec. 3.2 and 4).

* `scales`: the test scales Q derived from a model's training scale S (Sec. 3.2, 4.1, 4.2).
* `images`: the image list, isotropic rescaling to smallest side Q, mean subtraction.
* `crops`: the 5x5 crop grid and its mirror images (multi-crop, Sec. 3.2 / 4.3).
* `protocols`: dense and multi-crop evaluation of one image list through pycaffe nets.
* `posteriors`: per-image soft-max posteriors saved per run (npz) and their averages:
  multi-scale, multi-crop & dense, and ensembles of models (Sec. 4.2-4.4).
* `metrics`, `report`: top-1/top-5 error and the paper's Tables 3-6 in Markdown and CSV.
* `nets`: building the deploy nets and loading trained weights into them (FC -> conv surgery).
* `caffe_test_net`: dense testing inside `caffe test` (Sec. 3.3: evaluation on full-size images).
"""
