"""The KV store: /kv/get/<key>, /kv/set, /kv/delete/<key>, /kv/list with prefix, marker and count;
base64 values; limits on key and value size."""
import base64
import http.client
import json
import urllib.parse

import pytest
import requests

KEY_MAX = 1024
VALUE_MAX = 1 << 20


def b64(v):
    return base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()


def q(key):
    """Percent-encode a key for a path; dots too, since HTTP clients drop ".." segments."""
    return urllib.parse.quote(key, safe="").replace(".", "%2E")


def kv_set(c, node, key, value, **kw):
    return c.post(node, "/kv/set", {"key": key, "value": b64(value)}, **kw)


def kv_get(c, node, key, **kw):
    return c.get(node, "/kv/get/" + q(key), **kw)


def value_of(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/json"
    return base64.b64decode(r.json()["value"], validate=True)


def list_all(c, node, prefix="", count=None):
    keys, marker = [], ""
    while True:
        q = {"prefix": prefix, "marker": marker}
        if count:
            q["count"] = count
        r = c.get(node, "/kv/list?" + urllib.parse.urlencode(q))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"kvs", "marker"}
        keys += [(e["key"], base64.b64decode(e["value"])) for e in body["kvs"]]
        if not body["marker"]:
            return keys
        assert body["marker"] == body["kvs"][-1]["key"]
        marker = body["marker"]


def test_set_get_delete_everywhere(cluster3):
    c = cluster3
    assert kv_set(c, 2, "k1", b"hello").status_code == 200  # a follower forwards the write
    for i in (1, 2, 3):  # linearizable reads on every node
        assert value_of(kv_get(c, i, "k1")) == b"hello"
    binary = bytes(range(256)) * 3
    r = kv_set(c, 3, "bin", binary)
    assert (r.status_code, r.text) == (200, "")
    assert value_of(kv_get(c, 1, "bin")) == binary
    assert kv_set(c, 1, "empty", b"").status_code == 200
    assert value_of(kv_get(c, 2, "empty")) == b""
    assert kv_set(c, 1, "k1", b"again").status_code == 200
    assert value_of(kv_get(c, 3, "k1")) == b"again"
    r = c.post(1, "/kv/delete/k1")
    assert (r.status_code, r.text) == (200, "")
    for i in (1, 2, 3):
        r = kv_get(c, i, "k1")
        assert (r.status_code, r.json()) == (404, {"error": "Not Found"})
    # deleting an absent key is not an error
    assert c.post(2, "/kv/delete/never-was").status_code == 200
    # the path form of set
    r = c.post(2, "/kv/set/pathkey", {"value": b64("p")})
    assert r.status_code == 200, r.text
    assert value_of(kv_get(c, 1, "pathkey")) == b"p"
    assert c.post(2, "/kv/set/pathkey", {"key": "pathkey", "value": b64("q")}).status_code == 200
    r = c.post(2, "/kv/set/pathkey", {"key": "other", "value": b64("q")})
    assert r.status_code == 400 and "path" in r.json()["error"]


@pytest.mark.parametrize("key", ["a/b/c", "with space", "per%cent", "q?uestion", "hash#tag",
                                 "plus+sign", "amp&er=sand", "caf\u00e9 \U0001F600", "..", "/lead",
                                 "trail/", "~tilde", "semi;colon", "x" * KEY_MAX])
def test_keys_round_trip_through_paths(cluster3, key):
    c = cluster3
    assert kv_set(c, 1, key, "v:" + key[:20]).status_code == 200
    assert value_of(kv_get(c, 2, key)) == ("v:" + key[:20]).encode()
    # the same key set through the path form and listed back verbatim
    r = c.post(3, "/kv/set/" + q(key), {"value": b64("w")})
    assert r.status_code == 200, r.text
    got = dict(list_all(c, 1, prefix=key))
    assert got[key] == b"w"
    assert c.post(2, "/kv/delete/" + q(key)).status_code == 200
    assert kv_get(c, 3, key).status_code == 404


def test_limits_and_bad_input(cluster3):
    c = cluster3

    def err(r, status=400):
        assert r.status_code == status, (r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json"
        return r.json()

    # contract errors of decisions.md
    assert err(c.post(1, "/kv/set", {"key": "", "value": "AA=="})) == {"error": "Illegal Arguments"}
    assert err(c.post(1, "/kv/set", {"value": "AA=="})) == {"error": "Illegal Arguments"}
    assert err(c.post(1, "/kv/set", {"key": "k"})) == {"error": "Illegal Arguments"}
    # argument errors name the problem
    e = err(c.post(1, "/kv/set", {"key": "k", "value": "not base64!"}))
    assert e["code"] == "Argument" and "base64" in e["error"]
    e = err(c.post(1, "/kv/set", {"key": "k", "value": "QR=="}))  # non-canonical padding bits
    assert "base64" in e["error"]
    e = err(c.post(1, "/kv/set", {"key": 5, "value": "AA=="}))
    assert e["code"] == "Argument" and "key" in e["error"]
    e = err(c.post(1, "/kv/set", {"key": "x" * (KEY_MAX + 1), "value": "AA=="}))
    assert "too long" in e["error"] and "1024" in e["error"]
    e = err(c.post(1, "/kv/set", {"key": "k", "value": b64(b"\0" * (VALUE_MAX + 1))}))
    assert "too large" in e["error"] and str(VALUE_MAX) in e["error"]
    e = err(c.post(1, "/kv/set", '{"key":"a\\u0000b","value":"AA=="}'))
    assert "NUL" in e["error"]
    # path keys: NUL, invalid UTF-8, malformed escapes, too long, empty
    assert "UTF-8" in err(c.get(1, "/kv/get/a%00b"))["error"]
    assert "UTF-8" in err(c.get(1, "/kv/get/%FF"))["error"]
    conn = http.client.HTTPConnection(c.http(1), timeout=10)  # requests would re-quote "%zz"
    conn.request("GET", "/kv/get/a%zz")
    resp = conn.getresponse()
    assert resp.status == 400 and "escape" in json.loads(resp.read())["error"]
    conn.close()
    assert "too long" in err(c.get(1, "/kv/get/" + "y" * (KEY_MAX + 1)))["error"]
    assert err(c.get(1, "/kv/get/")) == {"error": "Illegal Arguments"}
    assert err(c.post(1, "/kv/delete/")) == {"error": "Illegal Arguments"}
    assert "NUL" in err(c.get(1, "/kv/list?prefix=a%00"))["error"]
    assert err(c.get(1, "/kv/list?count=-1"))["code"] == "Argument"
    assert err(c.get(1, "/kv/list?count=abc"))["code"] == "Argument"
    # a body far beyond the limit is refused before it is read
    r = c.post(1, "/kv/set", b"{" + b" " * (9 << 20) + b"}")
    assert err(r, 413)["error"]
    # exactly at the limits works
    big = bytes((i * 7) & 0xFF for i in range(VALUE_MAX))
    assert kv_set(c, 2, "k" * KEY_MAX, big).status_code == 200
    assert value_of(kv_get(c, 3, "k" * KEY_MAX)) == big
    assert c.post(1, "/kv/delete/" + "k" * KEY_MAX).status_code == 200
    # wrong methods
    assert err(c.get(1, "/kv/set"), 405)
    assert err(c.post(1, "/kv/list"), 405)
    # the cluster still serves
    assert kv_set(c, 3, "after", "ok").status_code == 200


def test_list_paging_prefix_marker_count(cluster3):
    c = cluster3
    s = requests.Session()
    keys = [f"page/{i:04d}" for i in range(1050)] + ["page", "pagf", "pag", "page/\u00e9"]
    for k in keys:
        r = s.post(c.url(1 + len(k) % 3, "/kv/set"), data=json.dumps({"key": k, "value": b64(k)}),
                   timeout=15)
        assert r.status_code == 200, r.text
    want = sorted(k.encode() for k in keys if k.startswith("page/"))
    for count in (None, 7, 1000):
        got = list_all(c, 2, prefix="page/", count=count)
        assert [k.encode() for k, _ in got] == want
        assert all(v == k.encode() for k, v in got)
    # default count 10, at most 1000 per page
    body = c.get(3, "/kv/list?prefix=page/").json()
    assert len(body["kvs"]) == 10 and body["marker"] == "page/0009"
    body = c.get(3, "/kv/list?prefix=page/&count=5000").json()
    assert len(body["kvs"]) == 1000 and body["marker"] == "page/0999"
    # marker is exclusive, and need not be a key
    body = c.get(1, "/kv/list?prefix=page/&marker=page/0999&count=2").json()
    assert [e["key"] for e in body["kvs"]] == ["page/1000", "page/1001"]
    body = c.get(1, "/kv/list?prefix=page/&marker=page/0999x&count=1").json()
    assert [e["key"] for e in body["kvs"]] == ["page/1000"]
    # byte order: "pag" < "page" < "page/..." < "pagf"
    body = c.get(1, "/kv/list?prefix=pag&count=3").json()
    assert [e["key"] for e in body["kvs"]] == ["pag", "page", "page/0000"]
    body = c.get(1, "/kv/list?prefix=page/%C3&count=3").json()
    assert [e["key"] for e in body["kvs"]] == ["page/\u00e9"] and body["marker"] == ""
    body = c.get(1, "/kv/list?prefix=nothing-here").json()
    assert body == {"kvs": [], "marker": ""}
    # stale reads answer from local state
    assert c.get(2, "/kv/list?prefix=pagf&stale=true").json()["kvs"][0]["key"] == "pagf"
