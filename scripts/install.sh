#!/usr/bin/env bash
# Installs desfs for the whole system: an isolated environment, commands on the PATH, the
# mount(8) helpers, the systemd unit, man pages and shell completion. `scripts/uninstall.sh`
# (make uninstall) takes the same variables and removes exactly what this puts in place.
#
#   PREFIX   the environment desfs runs from             /opt/desfs
#   BINDIR   where `desfs` is linked                      /usr/local/bin
#   SBINDIR  where mount(8) looks for mount.desfs         /sbin
#   UNITDIR  systemd units                                /etc/systemd/system
#   MANDIR   man pages                                    /usr/local/share/man
#   BASHDIR  bash completion                              /usr/share/bash-completion/completions
#   ZSHDIR   zsh completion                               /usr/local/share/zsh/site-functions
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/opt/desfs}
BINDIR=${BINDIR:-/usr/local/bin}
SBINDIR=${SBINDIR:-/sbin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
MANDIR=${MANDIR:-/usr/local/share/man}
BASHDIR=${BASHDIR:-/usr/share/bash-completion/completions}
ZSHDIR=${ZSHDIR:-/usr/local/share/zsh/site-functions}
PYTHON=${PYTHON:-python3}

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
"$PREFIX/bin/pip" install -q ".[install]"

install -d "$BINDIR" "$SBINDIR" "$UNITDIR" "$BASHDIR" "$ZSHDIR"
ln -sfn "$PREFIX/bin/desfs" "$BINDIR/desfs"
ln -sfn "$PREFIX/bin/mount.desfs" "$SBINDIR/mount.desfs"
ln -sfn "$PREFIX/bin/mount.desfs" "$SBINDIR/mount.fuse.desfs"

for unit in systemd/*.service; do
    sed "s|/usr/local/bin/desfs|$BINDIR/desfs|g" "$unit" > "$UNITDIR/$(basename "$unit")"
    chmod 644 "$UNITDIR/$(basename "$unit")"
done

"$PREFIX/bin/python" -m desfs.commands.manuals "$MANDIR" >/dev/null
"$PREFIX/bin/desfs" completion bash > "$BASHDIR/desfs"
"$PREFIX/bin/desfs" completion zsh > "$ZSHDIR/_desfs"

if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then
    systemctl daemon-reload
fi
echo "desfs installed in $PREFIX; try: desfs --version, man desfs, systemctl cat desfs@.service"
