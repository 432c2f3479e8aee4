"""The `desfs` and `mount.desfs` commands: parsing, wiring and exit codes.

Owns the command line (`main`), the mount daemon's start-up (`mount`, `wiring`), the
mount(8) helper (`helper`), the offline tools (`offline`), the operator tools
(`live`: status and warm), `pack`, and the Prometheus exporter (`metrics`). The top layer: it may
import every other package; nothing imports it.
"""
