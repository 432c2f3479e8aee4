#!/usr/bin/env bash
# The README's main job: mount the bundled sample archive, look at it with ordinary tools,
# and unmount. Usage: scripts/demo.sh [MOUNTPOINT]
set -euo pipefail
cd "$(dirname "$0")/.."
mnt=${1:-$PWD/mnt}
desfs=(.venv/bin/desfs)
mkdir -p "$mnt"
trap '"${desfs[@]}" umount "$mnt" 2>/dev/null || true' EXIT

echo "+ desfs mount @sample $mnt"
"${desfs[@]}" mount @sample "$mnt"
echo "+ ls $mnt"; ls "$mnt"
echo "+ find $mnt -maxdepth 2"; find "$mnt" -maxdepth 2 | sort
shard=$(find "$mnt/2024-12-03" -mindepth 1 -maxdepth 1 | sort | head -n 1)
echo "+ ls -l $shard"; ls -l "$shard"
readme=$(find "$mnt/2024-12-03" -name README.txt | sort | head -n 1)
echo "+ cat $readme"; cat "$readme"
file=$(find "$mnt/2024-12-04" -path '*invoices/*' -type f | sort | head -n 1)
echo "+ getfattr -d $file"; getfattr -d -m 'user.des' "$file"
echo "+ sha256sum (every file)"; find "$mnt" -type f -exec sha256sum {} + | wc -l
echo "+ touch $mnt/new (read-only)"; touch "$mnt/new" 2>&1 || true
echo "+ getfattr -n user.des.stats $mnt"; getfattr --only-values -n user.des.stats "$mnt"; echo
echo "+ desfs umount $mnt"
"${desfs[@]}" umount "$mnt"
trap - EXIT
echo "demo done"
