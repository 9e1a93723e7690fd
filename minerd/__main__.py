"""python -m minerd"""

import sys

from minerd.cli.entry import main

sys.exit(main())
