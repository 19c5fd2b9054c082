#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A second implementation of fleetota's encrypted images (docs/formats.md),
on Python's `cryptography` (python3-cryptography), for the interoperability
test (encrypt.sh): it decrypts what ota-keys wrote, and writes a signed,
encrypted bundle that ota-keys and ota-agent must accept. It shares no code
with the C side: protobuf is encoded by hand from ota.proto.

  crypt_interop.py decrypt BUNDLE RECIPIENT.key OUT
  crypt_interop.py bundle IMAGE RECIPIENT.pub OPKEY.key KEYLIST OUT.otab PRODUCT VERSION CODE

Recipient keys are X25519 (kind 0) or P-256 (kind 1: uncompressed points,
Z = the ECDH x-coordinate), told apart by the PEM key's type.
  crypt_interop.py seed OUT [p256]   (a fuzz seed for tests/fuzz/fuzz_agent_decrypt.c)
"""
import hashlib
import os
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

TAG = 16


# ---- protobuf, by hand --------------------------------------------------
def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    return varint(num << 3 | 2) + varint(len(value)) + value


def parse(buf):
    """{field number: [values]} (ints for varints, bytes for length-delimited)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def one(msg, num, default=None):
    return msg.get(num, [default])[0]


# ---- the format --------------------------------------------------------
def spki(pub):
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


KIND_X25519, KIND_P256 = 0, 1


def kind_of(key):
    return KIND_P256 if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) else KIND_X25519


def raw(pub):
    if kind_of(pub) == KIND_P256:
        assert pub.curve.name == "secp256r1", "P-256 only"
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ecdh(priv, peer_raw):
    """Z: X25519, or the x-coordinate of the P-256 point (what exchange returns)."""
    if kind_of(priv) == KIND_P256:
        return priv.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_raw))
    return priv.exchange(X25519PublicKey.from_public_bytes(peer_raw))


def ephemeral_for(pub):
    return ec.generate_private_key(ec.SECP256R1()) if kind_of(pub) == KIND_P256 else X25519PrivateKey.generate()


def wrap_context(key_id, prefix, plain_sha):
    return b"fleetota/v1/wrap\0" + key_id + prefix + plain_sha


def kek(shared, eph_raw, rcpt_raw, context):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + rcpt_raw, info=context).derive(shared)


def key_check(key, prefix):
    return hashlib.sha256(b"fleetota/v1/key-check\0" + prefix + key).digest()


def nonce(prefix, index):
    return prefix + struct.pack(">I", index)


def aad(index, last):
    return b"fleetota/v1/chunk\0" + struct.pack(">QB", index, 1 if last else 0)


def encrypt_chunks(key, prefix, image, chunk):
    out, n = bytearray(), (len(image) + chunk - 1) // chunk
    for i in range(n):
        out += AESGCM(key).encrypt(nonce(prefix, i), image[i * chunk:(i + 1) * chunk], aad(i, i == n - 1))
    return bytes(out)


def decrypt_chunks(key, prefix, ct, plain_size, chunk):
    out, n = bytearray(), (plain_size + chunk - 1) // chunk
    pos = 0
    for i in range(n):
        length = min(chunk, plain_size - i * chunk) + TAG
        out += AESGCM(key).decrypt(nonce(prefix, i), ct[pos:pos + length], aad(i, i == n - 1))
        pos += length
    if pos != len(ct):
        raise ValueError("trailing ciphertext")
    return bytes(out)


def read_bundle(path):
    data = open(path, "rb").read()
    if data[:4] != b"OTAB":
        raise ValueError("not a bundle")
    (hlen,) = struct.unpack(">I", data[4:8])
    header = parse(data[8:8 + hlen])
    return header, data[8 + hlen:]


def cmd_decrypt(bundle, key_path, out):
    header, ct = read_bundle(bundle)
    body = one(parse(one(header, 1)), 1)
    m = parse(body)
    image = parse(one(m, 12))
    plain_sha, plain_size = one(image, 1), one(image, 2)
    enc = parse(one(m, 20))
    assert one(enc, 1) == 1, "algorithm"
    prefix, chunk = one(enc, 5), one(enc, 4)
    assert hashlib.sha256(ct).digest() == one(enc, 2), "ciphertext digest"
    assert len(ct) == one(enc, 3), "ciphertext size"
    priv = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
    my_id = hashlib.sha256(spki(priv.public_key())).digest()
    for r in (parse(x) for x in enc.get(7, [])):
        if one(r, 1) != my_id:
            continue
        assert one(r, 5, KIND_X25519) == kind_of(priv), "recipient kind"
        eph = one(r, 2)
        shared = ecdh(priv, eph)
        k = aes_key_unwrap(kek(shared, eph, raw(priv.public_key()), wrap_context(my_id, prefix, plain_sha)), one(r, 3))
        assert key_check(k, prefix) == one(enc, 6), "key check"
        plain = decrypt_chunks(k, prefix, ct, plain_size, chunk)
        assert hashlib.sha256(plain).digest() == plain_sha, "plaintext digest"
        open(out, "wb").write(plain)
        return
    sys.exit("not a recipient")


def encryption_block(image, recipients, chunk, key, prefix):
    plain_sha = hashlib.sha256(image).digest()
    ct = encrypt_chunks(key, prefix, image, chunk)
    entries = b""
    for pub in recipients:
        key_id = hashlib.sha256(spki(pub)).digest()
        eph = ephemeral_for(pub)
        eph_raw = raw(eph.public_key())
        wrapped = aes_key_wrap(kek(ecdh(eph, raw(pub)), eph_raw, raw(pub), wrap_context(key_id, prefix, plain_sha)), key)
        kind = field(5, KIND_P256) if kind_of(pub) == KIND_P256 else b""
        entries += field(7, field(1, key_id) + field(2, eph_raw) + field(3, wrapped) + field(4, b"python") + kind)
    enc = (field(1, 1) + field(2, hashlib.sha256(ct).digest()) + field(3, len(ct)) + field(4, chunk)
           + field(5, prefix) + field(6, key_check(key, prefix)) + entries)
    return enc, ct


def cmd_bundle(image_path, rcpt_path, op_path, keylist_path, out, product, version, code):
    image = open(image_path, "rb").read()
    rcpt = serialization.load_pem_public_key(open(rcpt_path, "rb").read())
    op = serialization.load_pem_private_key(open(op_path, "rb").read(), None)
    key, prefix = os.urandom(32), os.urandom(8)
    enc, ct = encryption_block(image, [rcpt], 1000, key, prefix)
    img = field(1, hashlib.sha256(image).digest()) + field(2, len(image)) + field(3, b"py.bin")
    issued = int(time.time())
    body = (field(1, issued) + field(2, product.encode()) + field(4, version.encode()) + field(5, int(code))
            + field(10, issued) + field(12, img) + field(20, enc))
    sig = op.sign(b"fleetota/v1/manifest\0" + body)
    signature = field(1, hashlib.sha256(spki(op.public_key())).digest()) + field(2, 1) + field(3, sig)
    signed = field(1, body) + field(2, signature)
    header = field(1, signed) + field(2, open(keylist_path, "rb").read())
    with open(out, "wb") as f:
        f.write(b"OTAB" + struct.pack(">I", len(header)) + header + ct)


def cmd_seed(out, kind="x25519"):
    image = bytes(range(256)) * 10
    pub = (ec.generate_private_key(ec.SECP256R1()) if kind == "p256" else X25519PrivateKey.generate()).public_key()
    enc, ct = encryption_block(image, [pub], 256, b"\x42" * 32, b"fuzzseed")
    with open(out, "wb") as f:
        f.write(struct.pack(">IH", len(image), len(enc)) + enc + ct)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"decrypt": cmd_decrypt, "bundle": cmd_bundle, "seed": cmd_seed}[cmd](*args)
