"""`python -m shardscan`: the same command line as the `shardscan` script."""

import sys

from shardscan.cli import main

sys.exit(main())
