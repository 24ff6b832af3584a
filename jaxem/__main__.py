"""``python -m jaxem``: see ``jaxem._src.cli``."""

import sys

from jaxem._src.cli import main

if __name__ == "__main__":
    sys.exit(main())
