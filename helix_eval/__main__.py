"""``python -m helix_eval`` == ``helix-eval``."""

import sys

from .cli import main

sys.exit(main())
