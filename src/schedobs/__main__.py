"""``python -m schedobs``."""

import sys

from schedobs._cli import main

sys.exit(main())
