"""Entry point for `python -m amanflix_stress.sandbox`."""

import sys

from .cli import run_foreground

if __name__ == "__main__":
    sys.exit(run_foreground())
