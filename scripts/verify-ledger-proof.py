#!/usr/bin/env python3
"""verify-ledger-proof.py PROOF.json [--key KEY]

Checks, without swcli and with Python 3 alone, what `swcli ledger prove` printed:
  - the checkpoint (a signed note, C2SP tlog-checkpoint) is signed by KEY (the verifier key
    you trust: from `swcli ledger key` on the instance, or pinned by your client; without
    --key the one in the file is used, which proves only that the file is self-consistent);
  - with "inclusion": the event's export line is record SEQ-1 of the checkpoint's tree
    (RFC 6962 / RFC 9162 inclusion proof, SHA-256, leaf = SHA-256(0x00 || line));
  - with "consistency": the tree of FROM events (old_root) is a prefix of the checkpoint's
    (RFC 9162 consistency proof).
Prints "ok: …" and exits 0, or "FAIL: …" and exits 1. ed25519 (RFC 8032) is implemented
below from its reference algorithm.
"""
import base64
import hashlib
import json
import sys

# --- ed25519 verification (RFC 8032, reference arithmetic) ---
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = t1 * 2 * D * t2 % P
    Dd = z1 * 2 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, p):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, p)
        p = _add(p, p)
        s >>= 1
    return q


def _equal(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
_G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % P)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    A, R = _decompress(public), _decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % L
    return _equal(_mul(s, _G), _add(R, _mul(h, A)))


# --- signed notes (golang.org/x/mod/sumdb/note) ---
def open_note(msg, vkey):
    name, khash, kdata = vkey.split("+", 2)
    key = base64.b64decode(kdata)
    if key[0] != 1:
        raise ValueError("not an ed25519 key")
    want = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if int(khash, 16).to_bytes(4, "big") != want:
        raise ValueError("the key's hash does not match it")
    text, sep, sigs = msg.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text += "\n"
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        sname, sig = line[2:].split(" ", 1)
        raw = base64.b64decode(sig)
        if sname == name and raw[:4] == want and ed25519_verify(key[1:], text.encode(), raw[4:]):
            return text
    raise ValueError("no valid signature by " + name)


# --- RFC 6962 proofs (RFC 9162 2.1.3.2 and 2.1.4.2) ---
def node(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def check_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def check_consistency(first, second, first_hash, second_hash, proof):
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second:
        return False
    if first & (first - 1) == 0:
        proof = [first_hash] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not proof:
        return False
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def main():
    args = sys.argv[1:]
    key = None
    if "--key" in args:
        i = args.index("--key")
        key = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    doc = json.load(open(args[0]))
    key = key or doc["key"]
    try:
        text = open_note(doc["checkpoint"], key)
    except Exception as e:
        print("FAIL: checkpoint:", e)
        sys.exit(1)
    origin, size, root = text.split("\n")[:3]
    size, root = int(size), base64.b64decode(root)
    b64 = lambda xs: [base64.b64decode(x) for x in xs]
    if "inclusion" in doc:
        inc = doc["inclusion"]
        leaf = hashlib.sha256(b"\x00" + inc["line"].encode()).digest()
        if inc["size"] != size or not check_inclusion(inc["seq"] - 1, size, leaf, b64(inc["proof"]), root):
            print("FAIL: event %d is not proved in the checkpoint's tree" % inc["seq"])
            sys.exit(1)
        print("ok: event %d is in the log of %d events of %s (root %s), signed by %s" % (
            inc["seq"], size, origin, base64.b64encode(root).decode(), key.split("+")[0]))
    elif "consistency" in doc:
        con = doc["consistency"]
        if con["to"] != size or not check_consistency(con["from"], size, base64.b64decode(doc["old_root"]), root, b64(con["proof"])):
            print("FAIL: the log of %d events is not proved a prefix of the checkpoint's" % con["from"])
            sys.exit(1)
        print("ok: the log of %d events is a prefix of the log of %d events of %s, signed by %s" % (
            con["from"], size, origin, key.split("+")[0]))
    else:
        print("FAIL: neither inclusion nor consistency in", args[0])
        sys.exit(1)


if __name__ == "__main__":
    main()
