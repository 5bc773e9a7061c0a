"""`python -m functions.cli`."""

import sys

from functions.cli import main

sys.exit(main())
