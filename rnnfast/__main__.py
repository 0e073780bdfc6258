"""`python -m rnnfast`: the same as the `rnnfast` command."""
import sys

from .cli import main

sys.exit(main())
