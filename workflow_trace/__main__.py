"""``python -m workflow_trace``: the ``workflow-trace`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
