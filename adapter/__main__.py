"""`python -m adapter`: the same as the `adapter` command."""

from adapter.cli import main

raise SystemExit(main())
