#!/usr/bin/env python3
"""verify-ledger-export.py EXPORT.jsonl

Checks an `swcli ledger export` without swcli: every line's hash is the blake3 of the event's
canonical body, sequence numbers run 1, 2, 3 … and each event names the hash of the one
before. Prints the head and exits 0, or names the first bad event and exits 1.

The canonical body of an event is its export line without "hash", written as
json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) in UTF-8.
blake3 is implemented below (the reference algorithm), so only Python 3 is needed.
"""
import json
import sys

M = 0xFFFFFFFF
IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8


def _g(s, a, b, c, d, x, y):
    s[a] = (s[a] + s[b] + x) & M
    s[d] = ((s[d] ^ s[a]) >> 16 | (s[d] ^ s[a]) << 16) & M
    s[c] = (s[c] + s[d]) & M
    s[b] = ((s[b] ^ s[c]) >> 12 | (s[b] ^ s[c]) << 20) & M
    s[a] = (s[a] + s[b] + y) & M
    s[d] = ((s[d] ^ s[a]) >> 8 | (s[d] ^ s[a]) << 24) & M
    s[c] = (s[c] + s[d]) & M
    s[b] = ((s[b] ^ s[c]) >> 7 | (s[b] ^ s[c]) << 25) & M


def _compress(cv, words, counter, block_len, flags):
    s = cv[:] + IV[:4] + [counter & M, (counter >> 32) & M, block_len, flags]
    m = words[:]
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1]); _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5]); _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9]); _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13]); _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in PERM]
    return [s[i] ^ s[i + 8] for i in range(8)]


def _words(block):
    block = block.ljust(64, b"\0")
    return [int.from_bytes(block[i:i + 4], "little") for i in range(0, 64, 4)]


def _chunk_output(chunk, counter):
    cv = IV[:]
    blocks = [chunk[i:i + 64] for i in range(0, len(chunk), 64)] or [b""]
    for j, blk in enumerate(blocks):
        flags = (CHUNK_START if j == 0 else 0) | (CHUNK_END if j == len(blocks) - 1 else 0)
        if j == len(blocks) - 1:
            return (cv, _words(blk), counter, len(blk), flags)
        cv = _compress(cv, _words(blk), counter, 64, flags)


def _cv(out):
    return _compress(*out)


def blake3(data):
    chunks = [data[i:i + 1024] for i in range(0, len(data), 1024)] or [b""]
    stack = []
    for i, ch in enumerate(chunks[:-1]):
        cv, total = _cv(_chunk_output(ch, i)), i + 1
        while total & 1 == 0:
            cv = _cv((IV[:], stack.pop() + cv, 0, 64, PARENT))
            total >>= 1
        stack.append(cv)
    out = _chunk_output(chunks[-1], len(chunks) - 1)
    while stack:
        out = (IV[:], stack.pop() + _cv(out), 0, 64, PARENT)
    cv, words, counter, block_len, flags = out
    return b"".join(w.to_bytes(4, "little") for w in _compress(cv, words, counter, block_len, flags | ROOT))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    prev, want = "", 1
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            ev = json.loads(line)
            h = ev.pop("hash", None)
            body = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            seq = ev.get("seq")
            if seq != want:
                print(f"event {want}: missing or out of order (found seq {seq})")
                sys.exit(1)
            if "blake3:" + blake3(body).hex() != h:
                print(f"event {seq}: content does not match its hash")
                sys.exit(1)
            if ev.get("prev") != prev:
                print(f"event {seq}: previous-hash link broken")
                sys.exit(1)
            prev, want = h, want + 1
    print(f"ok: {want - 1} events, head {prev or '(empty)'}")


if __name__ == "__main__":
    main()
