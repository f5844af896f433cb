"""`python -m demo`: the same as `make demo`."""
import sys

from .run_demo import main

sys.exit(main())
