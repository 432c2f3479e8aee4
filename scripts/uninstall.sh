#!/usr/bin/env bash
# Removes what scripts/install.sh put in place (same variables, same defaults).
set -euo pipefail

PREFIX=${PREFIX:-/opt/desfs}
BINDIR=${BINDIR:-/usr/local/bin}
SBINDIR=${SBINDIR:-/sbin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
MANDIR=${MANDIR:-/usr/local/share/man}
BASHDIR=${BASHDIR:-/usr/share/bash-completion/completions}
ZSHDIR=${ZSHDIR:-/usr/local/share/zsh/site-functions}

rm -f "$BINDIR/desfs" "$SBINDIR/mount.desfs" "$SBINDIR/mount.fuse.desfs"
for unit in "$(dirname "$0")"/../systemd/*.service; do
    rm -f "$UNITDIR/$(basename "$unit")"
done
rm -f "$MANDIR/man1/desfs.1" "$MANDIR/man8/mount.desfs.8" "$BASHDIR/desfs" "$ZSHDIR/_desfs"
rm -rf "$PREFIX"
if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then
    systemctl daemon-reload
fi
echo "desfs removed (configuration in /etc/desfs and caches in /var/cache/desfs are kept)"
