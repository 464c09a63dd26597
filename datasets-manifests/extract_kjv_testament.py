#!/usr/bin/env python3
"""Makes a labelled corpus from the King James Version text of Debian's `bible-kjv-text` package (public domain):
passages of at most 5 consecutive verses, labelled by testament ("old" or "new"), without their heading (the book
name would give the answer away).

usage: extract_kjv_testament.py DATA OUT_DIR [--per-label N]

DATA      /usr/lib/bible.data, or a directory holding usr/lib/bible.data (as extract_kjv.py takes it).
OUT_DIR   receives kjv-testament-old.jsonl and kjv-testament-new.jsonl, one {"text": ...} object per line, verses
          separated by newlines (each file replaced atomically).
--per-label N  passages per testament, default 400, taken evenly spaced over that testament's candidates.

Only chapters whose running number (0-based, Genesis 1 = 0) is NOT a multiple of 10 are used, so no passage comes
from the chapters of demo/kjv-slice.txt, on which the demo pretrains its base. The output depends only on DATA.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract_kjv  # noqa: E402  (same directory)

FIRST_NEW_TESTAMENT_BOOK = "Matthew"


def passages(chapters, per_doc=5):
    testament = "old"
    for i, (book, _ch, verses) in enumerate(chapters):
        if book == FIRST_NEW_TESTAMENT_BOOK:
            testament = "new"
        if i % 10 == 0:
            continue
        n = len(verses)
        groups = -(-n // per_doc)
        start = 0
        for g in range(groups):
            stop = start + (n - start) // (groups - g)
            yield testament, "\n".join(verses[start:stop])
            start = stop


def evenly(items, k):
    if k > len(items):
        sys.exit("only %d candidates for %d passages" % (len(items), k))
    return [items[(j * len(items)) // k] for j in range(k)]


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0].startswith("-") or args[1].startswith("-"):
        sys.exit(__doc__)
    data, out = args[0], args[1]
    per_label = int(args[args.index("--per-label") + 1]) if "--per-label" in args else 400
    if os.path.isdir(data):
        data = os.path.join(data, "usr/lib/bible.data") if os.path.isfile(os.path.join(data, "usr/lib/bible.data")) else os.path.join(data, "bible.data")
    chapters = extract_kjv.parse_chapters(extract_kjv.read_bible_data(data))
    by = {"old": [], "new": []}
    for testament, text in passages(chapters):
        by[testament].append(text)
    os.makedirs(out, exist_ok=True)
    for testament, texts in by.items():
        chosen = evenly(texts, per_label)
        path = os.path.join(out, "kjv-testament-%s.jsonl" % testament)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for t in chosen:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        print("%s: %d of %d passages, %d bytes" % (path, len(chosen), len(texts), os.path.getsize(path)))


if __name__ == "__main__":
    main()
