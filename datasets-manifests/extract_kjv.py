#!/usr/bin/env python3
"""Turns the King James Version text of Debian's `bible-kjv-text` package (public domain) into plain-text
documents: short passages of consecutive verses, one document per passage, documents separated by one blank line.

usage: extract_kjv.py DATA OUT_FILE [--every-chapter K] [--chapter-offset R] [--verses-per-doc N]

DATA      the package's compressed text, /usr/lib/bible.data (or a directory holding usr/lib/bible.data,
          such as the output of `dpkg-deb -x bible-kjv-text_*.deb DIR`, or holding bible.data itself).
OUT_FILE  the text file to write (replaced atomically).
--every-chapter K   keep only chapters whose running number (0-based, Genesis 1 = 0, Revelation 22 = 1188)
                    is congruent to R modulo K; default K=1 (every chapter).
--chapter-offset R  default 0.
--verses-per-doc N  split each chapter into ceil(v/N) passages of nearly equal size (at most N verses each);
                    0 keeps whole chapters as documents. Default 10.

Each document is a heading line ("Genesis 1:1-10") followed by one verse per line, without verse numbers.
The output depends only on the bytes of DATA, so it is the same on every run.

The package stores the text in the Bible Retrieval System format (Chip Chapin, 1989-1993): an 84-byte header
("EC02" and a description), the window size and window count (big-endian 32-bit), a table of wnum+1 file offsets,
then each 64 KiB window of the plain text compressed on its own with the LZW of Unix compress(1) (block mode,
at most 16 bits a code, no per-window header). The plain text is one line per verse, "Ge1:1 In the beginning ...",
after one title line. Only the standard library is used.
"""
import os
import re
import struct
import sys

# The books in canonical order: the abbreviation the data file uses, and the name used in headings.
BOOKS = [
    ("Ge", "Genesis"), ("Exo", "Exodus"), ("Lev", "Leviticus"), ("Num", "Numbers"), ("Deu", "Deuteronomy"),
    ("Josh", "Joshua"), ("Jdgs", "Judges"), ("Ruth", "Ruth"), ("1Sm", "1 Samuel"), ("2Sm", "2 Samuel"),
    ("1Ki", "1 Kings"), ("2Ki", "2 Kings"), ("1Chr", "1 Chronicles"), ("2Chr", "2 Chronicles"), ("Ezra", "Ezra"),
    ("Neh", "Nehemiah"), ("Est", "Esther"), ("Job", "Job"), ("Psa", "Psalms"), ("Prv", "Proverbs"),
    ("Eccl", "Ecclesiastes"), ("SSol", "Song of Solomon"), ("Isa", "Isaiah"), ("Jer", "Jeremiah"),
    ("Lam", "Lamentations"), ("Eze", "Ezekiel"), ("Dan", "Daniel"), ("Hos", "Hosea"), ("Joel", "Joel"),
    ("Amos", "Amos"), ("Obad", "Obadiah"), ("Jonah", "Jonah"), ("Mic", "Micah"), ("Nahum", "Nahum"),
    ("Hab", "Habakkuk"), ("Zep", "Zephaniah"), ("Hag", "Haggai"), ("Zec", "Zechariah"), ("Mal", "Malachi"),
    ("Mat", "Matthew"), ("Mark", "Mark"), ("Luke", "Luke"), ("John", "John"), ("Acts", "Acts"), ("Rom", "Romans"),
    ("1Cor", "1 Corinthians"), ("2Cor", "2 Corinthians"), ("Gal", "Galatians"), ("Eph", "Ephesians"),
    ("Phi", "Philippians"), ("Col", "Colossians"), ("1Th", "1 Thessalonians"), ("2Th", "2 Thessalonians"),
    ("1Tim", "1 Timothy"), ("2Tim", "2 Timothy"), ("Titus", "Titus"), ("Phmn", "Philemon"), ("Heb", "Hebrews"),
    ("Jas", "James"), ("1Pet", "1 Peter"), ("2Pet", "2 Peter"), ("1Jn", "1 John"), ("2Jn", "2 John"),
    ("3Jn", "3 John"), ("Jude", "Jude"), ("Rev", "Revelation"),
]
KJV_VERSES = 31102
KJV_CHAPTERS = 1189
VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.+)$")


def lzw_decompress(data: bytes, max_bits: int = 16) -> bytes:
    """Decodes one block-mode compress(1) LZW stream without its 3-byte header.

    compress writes codes least significant bit first, in groups of n_bits bytes (8 codes); when the code width
    grows, or after a CLEAR code, the decoder skips to the next group boundary, as the original does."""
    CLEAR, FIRST = 256, 257
    max_max = 1 << max_bits
    prefix = [0] * max_max
    suffix = bytearray(max_max)
    suffix[:256] = bytes(range(256))
    n_bits, max_code, free_ent = 9, (1 << 9) - 1, FIRST
    out = bytearray()
    old_code = -1
    fin_char = 0
    pos, end = 0, len(data)
    while pos < end:
        size = min(n_bits, end - pos)
        group = int.from_bytes(data[pos:pos + size], "little")
        pos += size
        usable = (size << 3) - (n_bits - 1)  # whole codes only
        off = 0
        while off < usable:
            code = (group >> off) & ((1 << n_bits) - 1)
            off += n_bits
            if old_code < 0:  # the first code is a literal
                if code > 255:
                    raise ValueError("corrupt LZW stream: first code %d" % code)
                out.append(code)
                old_code = fin_char = code
                continue
            if code == CLEAR:
                free_ent = FIRST - 1
                n_bits, max_code = 9, (1 << 9) - 1
                break  # next group, 9 bits
            in_code = code
            stack = bytearray()
            if code >= free_ent:  # the KwKwK case
                if code > free_ent:
                    raise ValueError("corrupt LZW stream: code %d beyond table %d" % (code, free_ent))
                stack.append(fin_char)
                code = old_code
            while code >= 256:
                stack.append(suffix[code])
                code = prefix[code]
            fin_char = suffix[code]
            stack.append(fin_char)
            stack.reverse()
            out += stack
            if free_ent < max_max:
                prefix[free_ent] = old_code
                suffix[free_ent] = fin_char
                free_ent += 1
            old_code = in_code
            if free_ent > max_code:
                n_bits += 1
                max_code = max_max if n_bits == max_bits else (1 << n_bits) - 1
                break  # next group, wider codes
    return bytes(out)


def read_bible_data(path: str) -> str:
    """Returns the plain text stored in a BRS bible.data file."""
    with open(path, "rb") as f:
        d = f.read()
    if d[:2] != b"EC" or d[2:4] != b"02":
        raise ValueError("%s: not a BRS text data file (magic %r)" % (path, d[:4]))
    wsize, wnum = struct.unpack(">II", d[84:92])
    table = struct.unpack(">%dI" % (wnum + 1), d[92:92 + 4 * (wnum + 1)])
    if table[-1] != len(d):
        raise ValueError("%s: window table ends at %d, file has %d bytes" % (path, table[-1], len(d)))
    parts = []
    for w in range(wnum):
        plain = lzw_decompress(d[table[w]:table[w + 1]])
        if w < wnum - 1 and len(plain) != wsize:
            raise ValueError("%s: window %d decompressed to %d bytes, expected %d" % (path, w, len(plain), wsize))
        parts.append(plain)
    return b"".join(parts).decode("ascii")


def parse_chapters(text: str):
    """Returns [(book name, chapter number, [verse texts])] in canonical order, checking the whole structure."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines[0].startswith("Holy Bible"):
        raise ValueError("unexpected title line %r" % lines[0])
    abbrevs = {a: i for i, (a, _) in enumerate(BOOKS)}
    chapters = []
    last = (-1, 0, 0)
    for n, line in enumerate(lines[1:], start=2):
        m = VERSE.match(line)
        if not m or m.group(1) not in abbrevs:
            raise ValueError("line %d: not a verse: %r" % (n, line[:80]))
        ref = (abbrevs[m.group(1)], int(m.group(2)), int(m.group(3)))
        if ref[0] == last[0] and ref[1] == last[1]:
            ok = ref[2] == last[2] + 1
        elif ref[0] == last[0]:
            ok = ref[1] == last[1] + 1 and ref[2] == 1
        else:
            ok = ref[0] == last[0] + 1 and ref[1] == 1 and ref[2] == 1
        if not ok:
            raise ValueError("line %d: %s does not follow %s" % (n, ref, last))
        if ref[2] == 1:
            chapters.append((BOOKS[ref[0]][1], ref[1], []))
        chapters[-1][2].append(" ".join(m.group(4).split()))
        last = ref
    verses = sum(len(c[2]) for c in chapters)
    if last[0] != len(BOOKS) - 1 or verses != KJV_VERSES or len(chapters) != KJV_CHAPTERS:
        raise ValueError("incomplete text: %d books, %d chapters, %d verses" % (last[0] + 1, len(chapters), verses))
    return chapters


def documents(chapters, every, offset, per_doc):
    for i, (book, ch, verses) in enumerate(chapters):
        if i % every != offset:
            continue
        n = len(verses)
        groups = 1 if per_doc <= 0 else -(-n // per_doc)
        start = 0
        for g in range(groups):
            stop = start + (n - start) // (groups - g)  # nearly equal groups, the longer ones last
            if per_doc <= 0:
                head = "%s %d" % (book, ch)
            elif stop == start + 1:
                head = "%s %d:%d" % (book, ch, start + 1)
            else:
                head = "%s %d:%d-%d" % (book, ch, start + 1, stop)
            yield head + "\n" + "\n".join(verses[start:stop])
            start = stop


def option(args, name, default):
    if name in args:
        return int(args[args.index(name) + 1])
    return default


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0].startswith("-") or args[1].startswith("-"):
        sys.exit(__doc__)
    data, out = args[0], args[1]
    every = option(args, "--every-chapter", 1)
    offset = option(args, "--chapter-offset", 0)
    per_doc = option(args, "--verses-per-doc", 10)
    if every < 1 or not 0 <= offset < every:
        sys.exit("need --every-chapter K >= 1 and 0 <= --chapter-offset R < K")
    if os.path.isdir(data):
        for cand in ("usr/lib/bible.data", "bible.data"):
            if os.path.isfile(os.path.join(data, cand)):
                data = os.path.join(data, cand)
                break
        else:
            sys.exit("%s holds neither usr/lib/bible.data nor bible.data" % data)
    chapters = parse_chapters(read_bible_data(data))
    docs = list(documents(chapters, every, offset, per_doc))
    body = "\n\n".join(docs) + "\n"
    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(body)
    os.replace(tmp, out)
    print("%s: %d documents, %d bytes" % (out, len(docs), len(body.encode("utf-8"))))


if __name__ == "__main__":
    main()
