"""`python -m minerd.sim`: the same as `minerd sim`."""

import sys

from minerd.sim.cli import main

sys.exit(main())
