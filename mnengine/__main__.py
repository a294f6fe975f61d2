"""``python -m mnengine COMMAND ...``: the same as the ``mnengine`` command."""

from .cli import main

raise SystemExit(main())
