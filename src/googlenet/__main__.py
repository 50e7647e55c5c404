"""``python -m googlenet ...`` (and ``torchrun -m googlenet train ...``)."""

import sys

from .cli import main

sys.exit(main())
