"""python -m minerd"""

import sys

from minerd.cli import main

sys.exit(main())
