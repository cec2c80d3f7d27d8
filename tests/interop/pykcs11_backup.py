"""Python's PyKCS11 (Debian's python3-pykcs11) drives a wrap-and-restore of
a token's keys through the remhsm module: slot 1's RSA transport key
takes an AES key-encryption key from slot 0 (RSA-OAEP), and under that KEK
(AES-KWP) slot 0's P-256, Ed25519, AES-128 and HMAC keys move to slot 1 (a
key never leaves under a weaker one: hence AES-128 throughout), where each
signs, encrypts or MACs as its original does. Prints one line per
check and exits 1 if any failed.

    pykcs11_backup.py MODULE
"""
import sys

import PyKCS11

SO_PIN, PIN = "so-pin-1", "0000"
P256 = bytes.fromhex("06082a8648ce3d030107")
ED25519 = bytes.fromhex("06032b6570")
failures = 0


def check(name, ok):
    global failures
    print(("ok   " if ok else "FAIL ") + name)
    failures += 0 if ok else 1


def mech(kind, param=None):
    return PyKCS11.Mechanism(kind, param)


def session(lib, slot, label):
    lib.initToken(slot, SO_PIN, label)
    s = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    s.login(SO_PIN, PyKCS11.CKU_SO)
    s.initPin(PIN)
    s.logout()
    s.login(PIN)
    return s


def secret_template(key_type, **flags):
    t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, key_type),
         (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_SENSITIVE, True)]
    return t + [(getattr(PyKCS11, "CKA_" + k.upper()), v) for k, v in flags.items()]


def private_template(key_type, **flags):
    t = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_KEY_TYPE, key_type),
         (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_SENSITIVE, True)]
    return t + [(getattr(PyKCS11, "CKA_" + k.upper()), v) for k, v in flags.items()]


def transport_kek(src, dst):
    """An AES-128 KEK made on src and unwrapped on dst by dst's RSA-3072
    transport key, whose public half src takes in as a session object."""
    pub, priv = dst.generateKeyPair(
        [(PyKCS11.CKA_MODULUS_BITS, 3072), (PyKCS11.CKA_WRAP, True),
         (PyKCS11.CKA_VERIFY, False), (PyKCS11.CKA_PUBLIC_EXPONENT, (1, 0, 1)),
         (PyKCS11.CKA_TOKEN, True)],
        [(PyKCS11.CKA_UNWRAP, True), (PyKCS11.CKA_SIGN, False),
         (PyKCS11.CKA_DECRYPT, False), (PyKCS11.CKA_TOKEN, True)],
        mecha=mech(PyKCS11.CKM_RSA_PKCS_KEY_PAIR_GEN))
    n, e = dst.getAttributeValue(pub, [PyKCS11.CKA_MODULUS, PyKCS11.CKA_PUBLIC_EXPONENT])
    there = src.createObject([
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
        (PyKCS11.CKA_TOKEN, False), (PyKCS11.CKA_WRAP, True), (PyKCS11.CKA_VERIFY, False),
        (PyKCS11.CKA_MODULUS, bytes(n)), (PyKCS11.CKA_PUBLIC_EXPONENT, bytes(e))])
    kek = src.generateKey(
        secret_template(PyKCS11.CKK_AES, value_len=16, wrap=True, unwrap=True,
                        extractable=True, encrypt=False, decrypt=False),
        mecha=mech(PyKCS11.CKM_AES_KEY_GEN))
    oaep = PyKCS11.RSAOAEPMechanism(PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256)
    blob = src.wrapKey(there, kek, mecha=oaep)
    check("the KEK leaves slot 0 under RSA-OAEP (%d bytes)" % len(blob), len(blob) == 384)
    restored = dst.unwrapKey(
        priv, blob, secret_template(PyKCS11.CKK_AES, wrap=True, unwrap=True,
                                    encrypt=False, decrypt=False),
        mecha=oaep)
    return kek, restored


def keys_to_back_up(s):
    """Slot 0's keys, extractable: name -> (handle, template to restore
    it with, how to use it)."""
    ec_pub, ec = s.generateKeyPair(
        [(PyKCS11.CKA_EC_PARAMS, P256), (PyKCS11.CKA_TOKEN, True)],
        [(PyKCS11.CKA_EXTRACTABLE, True), (PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_TOKEN, True),
         (PyKCS11.CKA_LABEL, "device")],
        mecha=mech(PyKCS11.CKM_EC_KEY_PAIR_GEN))
    ed_pub, ed = s.generateKeyPair(
        [(PyKCS11.CKA_EC_PARAMS, ED25519), (PyKCS11.CKA_TOKEN, True)],
        [(PyKCS11.CKA_EXTRACTABLE, True), (PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_TOKEN, True),
         (PyKCS11.CKA_LABEL, "firmware")],
        mecha=mech(PyKCS11.CKM_EC_EDWARDS_KEY_PAIR_GEN))
    aes = s.generateKey(secret_template(PyKCS11.CKK_AES, value_len=16, extractable=True,
                                        encrypt=True, decrypt=True, label="data"),
                        mecha=mech(PyKCS11.CKM_AES_KEY_GEN))
    mac = s.generateKey(secret_template(PyKCS11.CKK_GENERIC_SECRET, value_len=16,
                                        extractable=True, sign=True, verify=True,
                                        label="mac"),
                        mecha=mech(PyKCS11.CKM_GENERIC_SECRET_KEY_GEN))
    return {
        "P-256": (ec, private_template(PyKCS11.CKK_EC, sign=True, label="device"),
                  ("verify", ec_pub, PyKCS11.CKM_ECDSA_SHA256)),
        "Ed25519": (ed, private_template(PyKCS11.CKK_EC_EDWARDS, sign=True, label="firmware"),
                    ("verify", ed_pub, PyKCS11.CKM_EDDSA)),
        "AES-128": (aes, secret_template(PyKCS11.CKK_AES, encrypt=True, decrypt=True,
                                         label="data"),
                    ("same", aes, PyKCS11.CKM_AES_ECB)),
        "HMAC": (mac, secret_template(PyKCS11.CKK_GENERIC_SECRET, sign=True, verify=True,
                                      label="mac"),
                 ("same", mac, PyKCS11.CKM_SHA256_HMAC)),
    }


def used_alike(src, dst, name, restored, use):
    how, original, kind = use
    data = bytes(range(32))
    if how == "verify":
        sig = dst.sign(restored, data, mech(kind))
        return src.verify(original, data, sig, mech(kind))
    if kind == PyKCS11.CKM_AES_ECB:
        return list(dst.encrypt(restored, data, mech(kind))) == \
            list(src.encrypt(original, data, mech(kind)))
    return list(dst.sign(restored, data, mech(kind))) == \
        list(src.sign(original, data, mech(kind)))


def main(module):
    lib = PyKCS11.PyKCS11Lib()
    lib.load(module)
    slots = lib.getSlotList()
    check("the module shows two slots", len(slots) == 2)
    src, dst = session(lib, slots[0], "source"), session(lib, slots[1], "restored")
    kek, kek_there = transport_kek(src, dst)
    kwp = mech(PyKCS11.CKM_AES_KEY_WRAP_KWP)
    for name, (key, template, use) in keys_to_back_up(src).items():
        blob = src.wrapKey(kek, key, mecha=kwp)
        restored = dst.unwrapKey(kek_there, blob, template, mecha=kwp)
        check("%s restored on slot 1 works as the original" % name,
              used_alike(src, dst, name, restored, use))
        sensitive, extractable = dst.getAttributeValue(
            restored, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE])
        check("%s restored sensitive and not extractable" % name,
              sensitive and not extractable)
        forged = bytes([blob[0] ^ 1]) + bytes(blob[1:])
        try:
            dst.unwrapKey(kek_there, forged, template, mecha=kwp)
            check("a forged %s wrap is refused" % name, False)
        except PyKCS11.PyKCS11Error as err:
            check("a forged %s wrap is refused" % name,
                  err.value == PyKCS11.CKR_WRAPPED_KEY_INVALID)
    # PyKCS11 answers None for an attribute the token calls sensitive.
    for where, holder, handle in (("slot 0", src, kek), ("slot 1", dst, kek_there)):
        value = holder.getAttributeValue(handle, [PyKCS11.CKA_VALUE])[0]
        check("the KEK's value cannot be read on %s" % where, value is None)
    found = dst.findObjects([(PyKCS11.CKA_TOKEN, True)])
    check("slot 1 holds the transport pair, the KEK and four keys (%d)" % len(found),
          len(found) == 7)
    src.logout()
    dst.logout()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
