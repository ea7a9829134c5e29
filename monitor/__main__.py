"""`python -m monitor` is `countwatch`."""
import sys

from .cli import main

sys.exit(main())
