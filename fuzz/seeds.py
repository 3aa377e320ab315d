#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from files in the repository.

Sources: the SDK-made signature vectors and payloads in
tests/fixtures/signatures/, the extra payloads in fuzz/fixtures/payloads/,
the example and shipped rule files, the golden error cases, and a few
hand-written hostile inputs below. Run from anywhere: python3 fuzz/seeds.py
(it rewrites the generated files; files named crash-* or regress-* that a
fuzzer found are kept).
"""

import base64
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
VECTORS = REPO / "tests" / "fixtures" / "signatures"
PAYLOAD_DIRS = [VECTORS / "payloads", VECTORS / "payloads" / "variants", FUZZ / "fixtures" / "payloads"]
SEEDS = FUZZ / "seeds"

KEEP_PREFIXES = ("crash-", "regress-")


def reset(target):
    out = SEEDS / target
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if not f.name.startswith(KEEP_PREFIXES):
            f.unlink()
    return out


def request(headers, body):
    """The targets' request format: header lines, an empty line, the body."""
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    return head.encode() + b"\n" + body


def payloads():
    for d in PAYLOAD_DIRS:
        for f in sorted(d.glob("*")):
            if f.suffix in (".json", ".txt"):
                yield f


def content_type(path):
    return "application/json" if path.suffix == ".json" else "application/x-www-form-urlencoded"


def vector_body(v):
    if "body_file" in v:
        return (VECTORS / v["body_file"]).read_bytes()
    return v["body"].encode()


TWILIO = {
    "https://mycompany.com/myapp.php": "twilio-docs",
    "https://hooks.example.com/twilio/sms": "twilio-sms",
    "https://hooks.example.com/twilio/events": "twilio-events",
}
SCHEMES = {
    "github": "github",
    "stripe": "stripe",
    "slack": "slack",
    "standardwebhooks": "standard",
    "shopify": "shopify",
    "gitlab": "gitlab",
    "twilio": None,
}


def verify_seeds():
    out = reset("verify")
    for scheme, config in SCHEMES.items():
        for v in json.loads((VECTORS / f"{scheme}.json").read_text()):
            url, _, query = v["url"].partition("?")
            name = config or TWILIO[url.replace(":443", "")]
            first = f"{name} {v['now']} {v['method']} {query}".rstrip() + "\n"
            data = first.encode() + request(v["headers"].items(), vector_body(v))
            (out / v["name"]).write_bytes(data)
    # The generic schemes, signed here as a sender would.
    body = b'{"event":"deploy","id":1}'
    mac = hmac.new(b"hmac-secret", body, hashlib.sha256).hexdigest()
    (out / "hmac_sha256_hex").write_bytes(
        b"hmac-sha256-hex 0 POST\n" + request([("X-Signature", "sha256=" + mac)], body))
    mac = base64.b64encode(hmac.new(b"hmac-secret", body, hashlib.sha1).digest()).decode()
    (out / "hmac_sha1_base64").write_bytes(
        b"hmac-sha1-base64 0 POST\n" + request([("X-Signature", mac)], body))
    mac = hmac.new(b"hmac-secret", body, hashlib.sha512).hexdigest()
    (out / "hmac_sha512_hex").write_bytes(
        b"hmac-sha512-hex 0 POST\n" + request([("X-Signature", "v1," + mac)], body))
    (out / "token_header").write_bytes(
        b"token-header 0 POST\n" + request([("X-Token", "token-value")], body))
    (out / "token_query").write_bytes(b"token-query 0 POST token=token-value&x=1\n\n" + body)
    creds = base64.b64encode(b"hook:pa:ss word").decode()
    (out / "basic").write_bytes(
        b"basic 0 POST\n" + request([("Authorization", "Basic " + creds)], body))
    (out / "hostile_headers").write_bytes(
        b"stripe -9223372036854775808 POST bodySHA256=%ZZ\n"
        b"Stripe-Signature: t=9223372036854775807,v1=,v1=zz,t=\n"
        b"webhook-signature: v1,\xff v1a, ,\n"
        b"X-Hub-Signature-256: sha256=\xc3\xa9\n\n\xff\x00{")


def body_seeds():
    out = reset("body")
    for f in payloads():
        (out / f.name).write_bytes(request([("Content-Type", content_type(f))], f.read_bytes()))
    for scheme in SCHEMES:
        for v in json.loads((VECTORS / f"{scheme}.json").read_text())[:2]:
            (out / f"request-{v['name']}").write_bytes(request(v["headers"].items(), vector_body(v)))
    extra = {
        "no_content_type_json": request([], b'{"a":[1,2,{"b":null}]}'),
        "no_content_type_form": request([], b"a=1&b=%20x&a=2&payload=%7B%7D"),
        "vendor_json": request([("Content-Type", "application/vnd.api+json; charset=utf-8")], b'{"data":[]}'),
        "text_plain": request([("Content-Type", "text/plain")], b"hello"),
        "form_payload_array": request(
            [("Content-Type", "application/x-www-form-urlencoded")], b"payload=%5B1%2C2%5D&x=%FF%FE"),
        "json_deep": request([("Content-Type", "application/json")], b"[" * 200 + b"]" * 200),
        "json_numbers": request(
            [("Content-Type", "application/json")],
            b'{"n":1e400,"m":-0,"i":18446744073709551616,"f":1.5e-400,"s":"\\ud800"}'),
        "whitespace": request([("Content-Type", "application/json")], b" \t\r\n"),
        "event_headers": request(
            [("Content-Type", "application/json"), ("X-Event", "x.y"), ("X-Delivery", "d1"),
             ("Idempotency-Key", "k")], b'{"meta":{"event":"e"},"id":"i","x":{"id":2}}'),
    }
    for name, data in extra.items():
        (out / name).write_bytes(data)


HOSTILE = [
    {"s": "{{payload.secret}}", "secret": "no", "n": 3, "list": [1, 2, 3]},
    {"s": "}}{{#each payload}}{{this}}{{/each}}{{", "n": -1, "m": 1e300},
    {"s": "{{{raw}}}", "from": "{", "to": "{{", "list": ["{{", "}}"], "map": {"{{a}}": "}}"}},
    {"s": "a" * 300 + "\u00e9\u0301\U0001F600", "n": 18446744073709551615, "flag": True},
    {"s": "\u0000\r\n\"\\", "list": [[1, [2]], {"a": None}], "key": "a.b", "map": {"a.b": 1, "__proto__": 2}},
    {"s": "x", "a": {"b": {"c": {"d": {"e": "deep"}}}}, "when": "2025-01-01T00:00:00+14:00"},
    {"s": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", "n": 1.5},
    {"list": "not a list", "map": [1], "n": "12", "m": "x", "t": None},
]


def template_seeds():
    out = reset("template")
    for f in payloads():
        kind = f.name.split("-")[0]
        source = kind if kind in ("github", "slack") else "fuzz"
        headers = [("Content-Type", content_type(f)), ("X-Fuzz-Source", source)]
        (out / f.name).write_bytes(request(headers, f.read_bytes()))
    for i, value in enumerate(HOSTILE):
        headers = [("Content-Type", "application/json"), ("X-Custom", "a{{b}}"),
                   ("X-Fuzz-Query", "q=%7B%7Bz&q=2")]
        (out / f"hostile-{i}").write_bytes(request(headers, json.dumps(value).encode()))
    form = b"s=%7B%7Bpayload.n%7D%7D&n=2&list=x"
    (out / "hostile-form").write_bytes(request([("Content-Type", "application/x-www-form-urlencoded")], form))
    (out / "hostile-nojson").write_bytes(request([("X-Fuzz-Source", "slack")], b"command=%2Fx&text={{y}}"))


PATHS = ["$..*", "$.ref", "$..id", "$.commits[*].author.name", "$[?@.type]",
         "$..[?length(@) > 3]", "$.data.object[?@ == 'usd']", "$['repository']['owner'].login",
         "$.*[1:-1:2]", "$..[?match(@, '[a-z]+')]"]


def jsonpath_seeds():
    out = reset("jsonpath")
    i = 0
    for f in payloads():
        if f.suffix != ".json":
            continue
        (out / f.name).write_bytes(PATHS[i % len(PATHS)].encode() + b"\n" + f.read_bytes())
        i += 1
    for j, value in enumerate(HOSTILE):
        (out / f"hostile-{j}").write_bytes(PATHS[j % len(PATHS)].encode() + b"\n" + json.dumps(value).encode())


def rules_seeds():
    out = reset("rules_decode")
    files = sorted((REPO / "rules").glob("*.yaml"))
    files += sorted((REPO / "examples").glob("*/rules.yaml"))
    files += sorted((REPO / "tests" / "golden" / "errors").glob("*/*.yaml"))
    files += [FUZZ / "rules" / "templates.yaml"]
    for f in files:
        name = "-".join(f.relative_to(REPO).parts)
        (out / name).write_bytes(f.read_bytes())
    # Everything one file may hold, sources and rules together.
    combined = b"".join((REPO / "rules" / n).read_bytes() for n in ("sources.yaml", "github.yaml"))
    (out / "combined-sources-github").write_bytes(combined)
    (out / "aliases").write_bytes(
        b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nsources: {s: {verify: {token: "
        b"{header: X-T, value: \"${UNSET_X:-d}\"}}}}\n")


def main():
    verify_seeds()
    body_seeds()
    template_seeds()
    jsonpath_seeds()
    rules_seeds()
    for d in sorted(SEEDS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
