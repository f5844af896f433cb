"""`python -m prototxt_gen`: the same as the `vgg-net` console script."""
from .cli import main

raise SystemExit(main())
