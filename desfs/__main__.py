"""`python -m desfs` runs the command-line interface."""

from desfs.cli import main

raise SystemExit(main())
