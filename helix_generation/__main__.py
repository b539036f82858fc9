"""``python -m helix_generation``: the ``helix-generate`` command."""

import sys

from .cli import main

sys.exit(main())
