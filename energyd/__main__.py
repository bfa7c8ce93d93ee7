"""`python -m energyd` runs the CLI."""

from energyd.cli import main

raise SystemExit(main())
