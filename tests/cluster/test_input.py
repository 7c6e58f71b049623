"""Garbage in: every bad request gets a clear 4xx with a JSON error, and the node keeps serving."""
import json
import socket

import pytest
import requests


def assert_json_error(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type") == "application/json"
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"]
    return body


@pytest.mark.parametrize("body,needle", [
    ('{"key":', "unexpected end"),
    ("", "unexpected end"),
    ("[1,2]", "object"),
    ('"str"', "object"),
    ("{'key':'a','value':'b'}", "invalid character"),
    ('{"key":"a","value":"b"} trailing', "invalid character"),
    ('{"key":1,"value":"b"}', "key"),
    ('{"key":"a","value":true}', "value"),
    ('{"key":"a"}', "value"),
    ('{"value":"b"}', "key"),
    ('{"key":"","value":"b"}', "key"),
    ('{"key":"a\\u0000b","value":"b"}', "NUL"),
    ('{"key":"a","value":"b",', "unexpected end"),
    ("\xff\xfe", "invalid"),
])
def test_bad_config_bodies(cluster3, body, needle):
    r = cluster3.post(1, "/config/set", body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body)
    err = assert_json_error(r, 400)
    assert needle.lower() in err["error"].lower(), err


@pytest.mark.parametrize("body,needle", [
    ('{"peer_id":18446744073709551616,"host":"1.2.3.4:5","member_type":1}', "out of range"),
    ('{"peer_id":-1,"host":"1.2.3.4:5","member_type":1}', "unsigned"),
    ('{"peer_id":1.5,"host":"1.2.3.4:5","member_type":1}', "integer"),
    ('{"peer_id":"1","host":"1.2.3.4:5","member_type":1}', "integer"),
    ('{"peer_id":5,"host":"1.2.3.4:5","member_type":256}', "out of range"),
    ('{"peer_id":5,"host":"1.2.3.4:5","member_type":-2}', "unsigned"),
    ('{"peer_id":1e400,"host":"1.2.3.4:5","member_type":1}', ""),
    ('{"peer_id":99999999999999999999999999999,"host":"1.2.3.4:5","member_type":1}', "out of range"),
])
def test_bad_numbers(cluster3, body, needle):
    r = cluster3.post(1, "/member/add", body)
    err = assert_json_error(r, 400)
    assert needle in err["error"], err


def test_max_uint64_is_accepted_exactly(cluster3):
    # 2^64-1 parses (then fails as an unknown member), 2^64 does not
    r = cluster3.post(1, "/member/remove", '{"peer_id":18446744073709551615}')
    assert (r.status_code, r.json()) == (400, {"error": "Illegal Arguments"})
    r = cluster3.post(1, "/member/remove", '{"peer_id":18446744073709551616}')
    assert r.json()["code"] == "Argument"


def test_huge_body_is_refused_without_reading_it(cluster3):
    c = cluster3
    big = b'{"key":"k","value":"' + b"x" * (50 * 1024 * 1024) + b'"}'
    try:
        r = c.post(1, "/config/set", big, timeout=30)
        assert_json_error(r, 413)
    except requests.ConnectionError:
        pass  # the server may close the connection before the client finished sending
    # still serving
    assert c.get(1, "/config/get?key=balance").status_code == 200
    assert c.post(1, "/config/set", {"key": "after_big", "value": "ok"}).status_code == 200


def test_chunked_body_needs_a_length(cluster3):
    host, port = cluster3.http(1).split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    body = b'{"key":"c","value":"d"}'
    s.sendall(b"POST /config/set HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Type: application/json\r\n\r\n" + b"%x\r\n" % len(body) + body +
              b"\r\n0\r\n\r\n")
    resp = b""
    while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        resp += chunk
    s.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), resp
    assert json.loads(payload) == {"error": "Unknown content length in request", "code": "Argument"}


def test_unknown_route_and_wrong_method(cluster3):
    r = cluster3.get(1, "/no/such/route")
    assert_json_error(r, 404)
    r = cluster3.get(2, "/config/set")
    assert_json_error(r, 405)
    assert r.headers["Allow"] == "POST"
    r = requests.delete(cluster3.url(1, "/config/get"), timeout=5)
    assert_json_error(r, 405)
    r = requests.request("PATCH", cluster3.url(1, "/stat"), timeout=5)
    assert r.status_code in (404, 405)


def test_bad_query_arguments(cluster3):
    c = cluster3
    r = c.get(1, "/internal/member?id=abc")
    assert_json_error(r, 400)
    r = c.get(1, "/internal/member?id=-1")
    assert_json_error(r, 400)
    r = c.get(1, "/internal/member?id=99999999999999999999999")
    assert_json_error(r, 400)
    r = c.get(1, "/config/get?key=" + "k" * 5000)
    assert_json_error(r, 400)


def test_raw_garbage_on_the_socket(cluster3):
    host, port = cluster3.http(1).split(":")
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"A" * 70000 + b"\r\n\r\n",
                 b"POST /config/set HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        s = socket.create_connection((host, int(port)), timeout=5)
        try:
            s.sendall(junk)
            s.recv(4096)
        except OSError:
            pass
        finally:
            s.close()
    assert cluster3.get(1, "/config/get?key=balance").status_code == 200


def test_many_bad_requests_keep_node_healthy(cluster3):
    s = requests.Session()
    for k in range(300):
        r = s.post(cluster3.url(1 + k % 3, "/config/set"), data="{" * (k % 50), timeout=5)
        assert r.status_code == 400
    for i in (1, 2, 3):
        assert cluster3.get(i, "/readyz").status_code == 200


def test_null_body_means_no_arguments(cluster3):
    # the Go client posts `null` when it has no arguments; it is parsed as {}
    r = cluster3.post(1, "/bid/alloc", "null")
    assert (r.status_code, r.json()) == (500, {"error": "request count is invalid", "code": "InternalServerError"})
    r = cluster3.post(1, "/bid/alloc", " null\n")
    assert r.status_code == 500
    r = cluster3.post(1, "/config/set", "nul")
    assert (r.status_code, r.json()) == (400, {"error": "unexpected end of JSON input", "code": "Argument"})
    r = cluster3.post(1, "/config/set", "5")
    assert r.status_code == 400 and "object" in r.json()["error"]


def test_a_follower_answers_bad_writes_as_the_leader_does(cluster3):
    # a follower hands a write to the leader unparsed (the leader parses it): its answer to bad
    # input is the leader's, byte for byte, and no bad write changes anything
    lid = cluster3.wait_leader()
    f = next(i for i in (1, 2, 3) if i != lid)
    cases = [("/config/set", b'{"key":'), ("/config/set", b"[1,2]"), ("/config/set", b"\xff\xfe"),
             ("/config/set", b'{"key":"a\\u0000b","value":"b"}'), ("/kv/set", b'{"key":1}'),
             ("/kv/set", b'{"key":"k","value":"not base64!"}'), ("/disk/heartbeat", b'{"disks":5}'),
             ("/disk/heartbeat", b'{"disks":[{"disk_id":"x"}]}'), ("/bid/alloc", b"null"),
             ("/member/add", b'{"peer_id":-1,"host":"1.2.3.4:5","member_type":1}')]
    before = cluster3.get(lid, "/kv/get/k")
    for path, body in cases:
        a = cluster3.post(lid, path, body)
        b = cluster3.post(f, path, body)
        assert a.status_code >= 400, (path, body, a.status_code, a.text)
        assert (b.status_code, b.headers.get("Content-Type"), b.content) == \
            (a.status_code, a.headers.get("Content-Type"), a.content), (path, body)
    assert cluster3.get(lid, "/kv/get/k").status_code == before.status_code
    for i in (1, 2, 3):
        assert cluster3.get(i, "/readyz").status_code == 200
