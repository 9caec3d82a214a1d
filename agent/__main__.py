"""``python -m agent`` is ``bustracker-agent``."""

import sys

from agent.cli import main

sys.exit(main())
