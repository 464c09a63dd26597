#!/usr/bin/env bash
# Writes the full King James Version text (Debian package bible-kjv-text, public domain) to OUT_DIR/kjv.txt:
# every chapter, as passages of at most 10 verses (the format of demo/kjv-slice.txt, which keeps every 10th chapter).
#
# Gets the package without root where it can (apt-get download + dpkg-deb -x into a temporary directory, the
# version pinned by KJV_VERSION, default 4.38, then any version apt knows); otherwise uses the installed package,
# installing it with apt-get if it is missing (needs root, or sudo).
set -euo pipefail
out="${1:?usage: fetch_kjv.sh OUT_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
version="${KJV_VERSION:-4.38}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

data=""
if (cd "$work" && { apt-get download -q "bible-kjv-text=$version" || apt-get download -q bible-kjv-text; }) >&2; then
    deb="$(ls "$work"/bible-kjv-text_*.deb)"
    echo "using $(basename "$deb")" >&2
    dpkg-deb -x "$deb" "$work/root"
    data="$work/root/usr/lib/bible.data"
else
    if ! dpkg -s bible-kjv-text >/dev/null 2>&1; then
        echo "apt-get download failed; installing bible-kjv-text" >&2
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -q >&2
        $sudo apt-get install -y -q bible-kjv-text >&2
    fi
    echo "using the installed bible-kjv-text $(dpkg-query -W -f='${Version}' bible-kjv-text)" >&2
    data="$(dpkg -L bible-kjv-text | grep '/bible\.data$')"
fi

mkdir -p "$out"
python3 "$here/extract_kjv.py" "$data" "$out/kjv.txt"
