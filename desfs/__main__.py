"""`python -m desfs` runs the command-line interface."""

from desfs.commands.main import main

raise SystemExit(main())
