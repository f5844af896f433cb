"""Training and validation data for Sec. 3.1: image sets to Caffe LMDBs at every training
scale S, with the mean pixel (Sec. 2.1) and colour PCA the recipe needs (`vgg-data`), and the
Fashion-MNIST importer used for demos and tests (`vgg-fashion-mnist`)."""
