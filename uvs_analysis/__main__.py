"""``python -m uvs_analysis`` is the ``uvs-analysis`` command."""

from uvs_analysis.cli import main

raise SystemExit(main())
