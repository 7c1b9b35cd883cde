"""Independent reference implementation of DESIGN.md §4 "Identity", used to generate
fingerprint_vectors.json. The Rust implementation must reproduce every vector; neither was derived
from the other.  Run: python3 fingerprint_reference.py > fingerprint_vectors.json
"""
import hashlib
import json
import re
import struct

TOKEN = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9a-fA-F]))"
    r"|(?P<hex>[0-9a-fA-F]+)"
)


def normalize(message):
    def repl(m):
        if m.group("uuid"):
            return "<uuid>"
        tok = m.group("hex")
        if len(tok) >= 8 and not tok.isdigit():
            return "<hex>"
        return re.sub(r"[0-9]+", "<num>", tok)

    return TOKEN.sub(repl, message)


def text(v):
    return v.strip() if isinstance(v, str) else ""


def first(*values):
    for v in values:
        if text(v):
            return text(v)
    return ""


def field(s):
    b = s.encode("utf-8")
    return struct.pack(">Q", len(b)) + b


def fingerprint(exceptions):
    h = hashlib.sha256()
    for e in exceptions:
        h.update(b"E" + field(text(e.get("type"))) + field(normalize(text(e.get("value")))))
        frames = ((e.get("stacktrace") or {}).get("frames")) or []
        in_app = [f for f in frames if f.get("in_app") is True]
        for f in in_app or frames:
            fn = first(f.get("resolved_name"), f.get("function"), f.get("mangled_name"))
            path = first(f.get("source"), f.get("filename"), f.get("abs_path"))
            path = re.split(r"[?#]", path, maxsplit=1)[0]
            h.update(b"F" + field(fn) + field(path))
    return h.hexdigest()


def frame(fn, file, line, col=None, in_app=True):
    f = {"function": fn, "filename": file, "lineno": line, "in_app": in_app}
    if col is not None:
        f["colno"] = col
    return f


def exc(kind, value, frames=None):
    e = {"type": kind, "value": value, "mechanism": {"type": "generic", "handled": False}}
    if frames is not None:
        e["stacktrace"] = {"type": "raw", "frames": frames}
    return e


CHECKOUT = "http://localhost:8111/assets/checkout.js"
VECTORS = {
    "web_type_error": [exc("TypeError", "Cannot read properties of undefined (reading 'toFixed')", [
        frame("formatPrice", CHECKOUT, 3, 48), frame("Array.map", "<anonymous>", None, in_app=False),
        frame("renderCart", CHECKOUT, 4, 47), frame("onCheckoutClick", CHECKOUT, 5, 30)])],
    "web_type_error_other_lines": [exc("TypeError", "Cannot read properties of undefined (reading 'toFixed')", [
        frame("formatPrice", CHECKOUT, 93, 8), frame("Array.map", "<anonymous>", None, in_app=False),
        frame("renderCart", CHECKOUT, 14, 7), frame("onCheckoutClick", CHECKOUT, 55, 3)])],
    "web_type_error_other_query": [exc("TypeError", "Cannot read properties of undefined (reading 'toFixed')", [
        frame("formatPrice", CHECKOUT + "?v=2#x", 3, 48), frame("Array.map", "<anonymous>", None, in_app=False),
        frame("renderCart", CHECKOUT + "?v=2", 4, 47), frame("onCheckoutClick", CHECKOUT, 5, 30)])],
    "web_type_error_other_function": [exc("TypeError", "Cannot read properties of undefined (reading 'toFixed')", [
        frame("formatTotal", CHECKOUT, 3, 48), frame("Array.map", "<anonymous>", None, in_app=False),
        frame("renderCart", CHECKOUT, 4, 47), frame("onCheckoutClick", CHECKOUT, 5, 30)])],
    "node_user_7": [exc("Error", "User 7 not found in database", [frame("loadUser", "rejection.js", 5, 9)])],
    "node_user_12345": [exc("Error", "User 12345 not found in database", [frame("loadUser", "rejection.js", 5, 9)])],
    "ids_uuid_and_hex": [exc("Error", "order 01932b80-7777-7888-8999-aaaabbbbcccc blob deadbeefcafe failed", [])],
    "ids_uuid_and_hex_other": [exc("Error", "order 11111111-2222-4333-8444-555555555555 blob 0123abcd9 failed", [])],
    "no_in_app_frames": [exc("Error", "boom", [frame("a", "lib.js", 1, in_app=False), frame("b", "vendor.js", 2, in_app=False)])],
    "resolved_frames": [{"type": "RuntimeError", "value": "payment provider rejected charge",
                          "stacktrace": {"type": "resolved", "frames": [
                              {"raw_id": "x/0", "mangled_name": "charge_m", "resolved_name": "charge", "line": 57,
                               "source": "app/billing/service.py", "in_app": True, "resolved": True}]}}],
    "python_chain": [
        exc("RuntimeError", "checkout failed", [frame("<module>", "app_handled.py", 28), frame("checkout", "app_handled.py", 23)]),
        exc("PaymentDeclined", "could not charge user user_42 amount 1999", [frame("checkout", "app_handled.py", 21), frame("charge", "app_handled.py", 17)]),
        exc("KeyError", "'card'", [frame("charge", "app_handled.py", 15), frame("fetch_card", "app_handled.py", 11)]),
    ],
    "python_chain_reordered": [
        exc("KeyError", "'card'", [frame("charge", "app_handled.py", 15), frame("fetch_card", "app_handled.py", 11)]),
        exc("PaymentDeclined", "could not charge user user_42 amount 1999", [frame("checkout", "app_handled.py", 21), frame("charge", "app_handled.py", 17)]),
        exc("RuntimeError", "checkout failed", [frame("<module>", "app_handled.py", 28), frame("checkout", "app_handled.py", 23)]),
    ],
    "unicode_message": [exc("ValueError", "Ошибка обработки заказа 42 – ñandú 🚀", [])],
    "no_type_no_message": [{}],
}

if __name__ == "__main__":
    out = [{"name": k, "exception_list": v, "fingerprint": fingerprint(v)} for k, v in VECTORS.items()]
    print(json.dumps(out, indent=1, ensure_ascii=False))
