#!/usr/bin/env bash
# The file-system matrix: runs the Store and Blobs rows (and the 1,000,000-key
# scale measure on the journaled file systems) on loop-mounted ext4 with a
# journal, XFS and btrfs images, and on the machine's own file system, then
# writes one table per file system into RESULTS.md (between the fsmatrix
# markers) and a chart with a panel per file system to docs/bench-fs.svg.
#
# As root (mount), from anywhere:
#   bash bench/fsmatrix.sh
# Environment:
#   ONLY    rows to run (default '^(Store|Blobs): ')
#   ROUNDS  rounds per row (default 5)
#   SCALE   keys of the scale measure (default 1000000; 0 skips it)
#   FS      file systems to measure (default "ext4 xfs btrfs root")
#   IMGDIR  where the images go (default /var/tmp/dirstore-fsmatrix)
set -euo pipefail
cd "$(dirname "$0")"

ONLY=${ONLY:-'^(Store|Blobs): '}
ROUNDS=${ROUNDS:-5}
SCALE=${SCALE:-1000000}
FS=${FS:-"ext4 xfs btrfs root"}
IMGDIR=${IMGDIR:-/var/tmp/dirstore-fsmatrix}
# Images are sparse: 4 KiB per value of the scale measure, with room for the
# rows' own files.
IMGSIZE=${IMGSIZE:-24G}

if [ "$(id -u)" != 0 ]; then
	echo "fsmatrix: needs root (it mounts loop images)" >&2
	exit 1
fi
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
if ((${#need[@]})); then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$IMGDIR"
out=$(mktemp -d "$IMGDIR/results-XXXXXX")
bin="$out/bench"
go build -o "$bin" .

mounted=""
cleanup() {
	if [ -n "$mounted" ]; then
		umount "$mounted" || true
	fi
	rm -f "$IMGDIR"/*.img
}
trap cleanup EXIT

# mkimage FS: a fresh image of FS mounted at $IMGDIR/FS (in $mounted).
mkimage() {
	local fs=$1 img="$IMGDIR/$1.img" mnt="$IMGDIR/$1"
	rm -f "$img"
	truncate -s "$IMGSIZE" "$img"
	case $fs in
	ext4) mkfs.ext4 -q -F "$img" ;; # with a journal, as mkfs.ext4 makes it
	xfs) mkfs.xfs -q -f "$img" ;;
	btrfs) mkfs.btrfs -q -f "$img" ;;
	esac
	mkdir -p "$mnt"
	mount -o loop "$img" "$mnt"
	mounted=$mnt
}

unmount() {
	umount "$mounted"
	mounted=""
}

label() {
	case $1 in
	ext4) echo "ext4 with a journal (loop image)" ;;
	xfs) echo "XFS (loop image)" ;;
	btrfs) echo "btrfs (loop image)" ;;
	root) echo "this machine's root file system: ext4 without a journal" ;;
	esac
}

jsons=()
: >"$out/scale.md"
for fs in $FS; do
	if [ "$fs" = root ]; then
		dir=/var/tmp
	else
		mkimage "$fs"
		dir=$mounted
	fi
	echo "fsmatrix: $(label "$fs"): rows" >&2
	"$bin" -dir "$dir" -only "$ONLY" -rounds "$ROUNDS" -svg - -json "$out/$fs.json" -label "$(label "$fs")" >/dev/null
	jsons+=("$out/$fs.json")
	if [ "$SCALE" -gt 0 ] && { [ "$fs" = ext4 ] || [ "$fs" = xfs ]; }; then
		echo "fsmatrix: $(label "$fs"): $SCALE keys" >&2
		"$bin" -dir "$dir" -scale "$SCALE" -rounds "$ROUNDS" >>"$out/scale.md"
	fi
	if [ "$fs" != root ]; then
		unmount
		rm -f "$IMGDIR/$fs.img"
	fi
done

list=$(IFS=,; echo "${jsons[*]}")
"$bin" -merge "$list" -svg ../docs/bench-fs.svg >"$out/tables.md"

# Splice the tables into RESULTS.md between the markers.
python3 - "$out/tables.md" "$out/scale.md" <<'EOF'
import sys, datetime
tables = open(sys.argv[1]).read()
scale = open(sys.argv[2]).read()
begin, end = "<!-- fsmatrix begin -->", "<!-- fsmatrix end -->"
body = (begin + "\n\n# By file system\n\n"
        "Written by `bash bench/fsmatrix.sh` (as root) on " + datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") +
        ": the Store and Blobs rows on each file system, one table each; the chart is `docs/bench-fs.svg`, a panel per file system.\n\n"
        "![dirstore ÷ alternative, by file system](../docs/bench-fs.svg)\n" + tables +
        ("\n## Scale\n" + scale if scale.strip() else "") + "\n" + end + "\n")
path = "RESULTS.md"
s = open(path).read()
if begin in s:
    s = s[:s.index(begin)] + body + s[s.index(end) + len(end) + 1:]
else:
    s = s.rstrip("\n") + "\n\n" + body
open(path, "w").write(s)
EOF
echo "fsmatrix: wrote bench/RESULTS.md and docs/bench-fs.svg (raw results in $out)" >&2
