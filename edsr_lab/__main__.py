"""``python -m edsr_lab ...``: see :mod:`edsr_lab.cli`."""

import sys

from edsr_lab.cli import main

sys.exit(main())
