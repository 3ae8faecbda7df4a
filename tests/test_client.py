"""The HTTP client against real loopback servers: the counting server, and raw peers that misbehave."""

import re
import socket

import pytest
from helpers import free_port
from loopback import CLOSE, RawServer

from amanflix_stress.engine.client import HttpClient, check_header, parse_base_url


def make_client(url, samples, timeout_s=2.0):
    return HttpClient(url, 7, samples.append, timeout_s=timeout_s, connect_timeout_s=1.0)


def test_a_fast_request_yields_one_ok_sample_with_its_template_name(server):
    samples = []
    reply = make_client(server.url, samples).call("GET /api/movies/{id}", "GET", "/delay", query={"ms": 20})
    assert reply.status == 200 and reply.json() == {"ok": True}
    (s,) = samples
    assert s.name == "GET /api/movies/{id}" and s.error == "" and s.user == 7
    assert 20_000 <= s.latency_us < 2_000_000


def test_a_500_is_data_with_the_body_message(server):
    samples = []
    reply = make_client(server.url, samples).call("GET /500", "GET", "/500")
    assert reply.status == 500 and reply.error == "http_5xx"
    assert samples[0].error == "http_5xx" and "boom 123" in samples[0].message


def test_a_dropped_connection_is_a_read_error(server):
    samples = []
    make_client(server.url, samples).call("GET /drop", "GET", "/drop")
    assert samples[0].error == "read" and samples[0].status == 0


def test_a_hanging_server_gives_a_timeout_sample(server):
    samples = []
    make_client(server.url, samples, timeout_s=0.3).call("GET /hang", "GET", "/hang")
    assert samples[0].error == "timeout"
    assert samples[0].latency_us < 2_000_000


def test_connection_refused_is_a_connect_error():
    port = free_port()
    samples = []
    make_client(f"http://127.0.0.1:{port}", samples).call("GET /", "GET", "/")
    assert samples[0].error == "connect"


def test_a_check_can_fail_a_200(server):
    samples = []
    make_client(server.url, samples).call(
        "GET /ok", "GET", "/ok", check=lambda r: ("lost_update", "stale echo")
    )
    assert samples[0].error == "lost_update" and samples[0].message == "stale echo"


@pytest.mark.parametrize("bad", ["127.0.0.1:5001", "ftp://x", "http://", "http://h:99999"])
def test_bad_base_urls_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError):
        parse_base_url(bad)


@pytest.mark.parametrize("route", ["/chunked", "/eof"])
def test_bodies_without_content_length_are_read_whole(server, route):
    samples = []
    client = make_client(server.url, samples)
    for _ in range(2):  # the second request must not trip over what the first left behind
        reply = client.call("GET " + route, "GET", route)
        assert reply.status == 200 and reply.json() == {"ok": "in parts"}
    assert [s.error for s in samples] == ["", ""]


def test_the_connection_is_reused_between_requests(server):
    samples = []
    client = make_client(server.url, samples)
    for _ in range(5):
        client.call("GET /ok", "GET", "/ok")
    assert [s.error for s in samples] == [""] * 5 and server.counts["/ok"] == 5
    assert server.connections == 1


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """The counting server behind TLS with a throwaway certificate for 127.0.0.1 that this test trusts."""
    import ssl
    import subprocess

    from loopback import CountingServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client builds its default TLS context
    with CountingServer() as srv:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
        yield srv


def test_an_https_target_is_measured_like_a_plain_one(tls_server):
    samples = []
    client = make_client(tls_server.url.replace("http://", "https://"), samples)
    for _ in range(3):
        reply = client.call("GET /ok", "GET", "/ok")
        assert reply.status == 200 and reply.json() == {"ok": True}
    assert [s.error for s in samples] == ["", "", ""] and tls_server.counts["/ok"] == 3


def test_an_untrusted_certificate_is_a_tls_error(tls_server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    samples = []
    make_client(tls_server.url.replace("http://", "https://"), samples).call("GET /ok", "GET", "/ok")
    assert samples[0].error == "tls" and "CERTIFICATE_VERIFY_FAILED" in samples[0].message


def answer_ok(body: bytes = b'{"ok": true}', extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    """A whole answer with Content-Length; `extra` is more header lines."""
    head = b"%s 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (version, len(body))
    return head + extra + b"\r\n" + body


@pytest.mark.parametrize(
    "interim",
    [
        [b"HTTP/1.1 100 Continue\r\n\r\n"],
        [
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 102 Processing\r\n\r\n",
        ],
    ],
    ids=["100", "103+102"],
)
@pytest.mark.parametrize("one_write", [True, False], ids=["one-write", "own-writes"])
def test_interim_answers_are_skipped_and_the_final_one_is_read(interim, one_write):
    def answer(request):
        chunks = [*interim, answer_ok(request.target.encode(), b"Content-Type: text/plain\r\n")]
        return [b"".join(chunks)] if one_write else chunks

    samples = []
    with RawServer(answer) as srv:
        client = make_client(srv.url, samples)
        replies = [client.call("GET /a", "GET", path) for path in ("/first", "/second")]
    assert [(r.status, r.body) for r in replies] == [(200, b"/first"), (200, b"/second")]
    assert [s.error for s in samples] == ["", ""] and len(srv.peers) == 1


def test_an_unasked_101_ends_the_answer_and_the_connection():
    def answer(request):
        return [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"]

    samples = []
    with RawServer(answer) as srv:
        client = make_client(srv.url, samples)
        client.call("GET /a", "GET", "/a")
        client.call("GET /a", "GET", "/a")
    assert [(s.status, s.error) for s in samples] == [(101, "http_1xx")] * 2
    assert [r.connection for r in srv.received] == [1, 2]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_an_ipv6_target_gets_a_bracketed_host_over_ipv6():
    samples = []
    with RawServer(lambda request: [answer_ok()], host="::1") as srv:
        reply = make_client(srv.url, samples).call("GET /ok", "GET", "/ok")
    assert reply.status == 200 and samples[0].error == ""
    assert srv.received[0].headers["host"] == f"[::1]:{srv.port}"
    assert srv.peers[0][0] == "::1"


def test_paths_are_percent_encoded_and_reserved_characters_kept():
    samples = []
    with RawServer(lambda request: [answer_ok()]) as srv:
        client = make_client(srv.url + "/my api", samples)
        client.call("GET /s", "GET", "/search/Amélie Poulain/100%/caf%C3%A9", query={"q": "é a"})
        client.call("GET /r", "GET", "/a:b@c/!$&'()*+,;=~-._/x?y=1")
        client.call("GET /x", "GET", "/x\r\nX-Injected: 1")
    assert [r.target for r in srv.received] == [
        "/my%20api/search/Am%C3%A9lie%20Poulain/100%25/caf%C3%A9?q=%C3%A9+a",
        "/my%20api/a:b@c/!$&'()*+,;=~-._/x?y=1",
        "/my%20api/x%0D%0AX-Injected:%201",
    ]
    assert "x-injected" not in srv.received[2].headers
    assert [s.error for s in samples] == ["", "", ""]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Note", "a\r\nX-Injected: 1"),
        ("X-Note", "a\nb"),
        ("X-Note", "a\rb"),
        ("X-Bad Name", "v"),
        ("X-A\nB", "v"),
    ],
)
def test_headers_that_would_split_the_request_are_refused_naming_the_header(name, value):
    samples = []
    with RawServer(lambda request: [answer_ok()]) as srv:
        client = make_client(srv.url, samples)
        with pytest.raises(ValueError, match=re.escape(repr(name))) as refused:
            client.call("GET /ok", "GET", "/ok", headers={name: value})
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            client.headers[name] = value  # the user's own headers are checked when set
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            check_header(name, value)  # what a profile loader calls
        client.call("GET /ok", "GET", "/ok", headers={"X-Note": "fine"})
    assert "\n" not in str(refused.value)  # one line, ready for a profile error
    assert [r.headers.get("x-note") for r in srv.received] == ["fine"]
    assert [s.error for s in samples] == [""]


def test_a_tls_handshake_that_never_finishes_times_out_on_the_connect_timeout():
    samples = []
    with RawServer(hold=True) as srv:
        client = HttpClient(
            srv.url.replace("http://", "https://"), 7, samples.append, timeout_s=30.0, connect_timeout_s=0.3
        )
        reply = client.call("GET /ok", "GET", "/ok")
    (sample,) = samples
    assert (reply.status, sample.error, sample.message) == (0, "timeout", "TLS handshake timed out")
    assert len(srv.peers) == 1  # TCP was accepted: only the handshake hung
    assert 250_000 <= sample.latency_us < 10_000_000  # the 0.3 s connect timeout, not the 30 s read timeout


def test_post_bodies_reach_the_server_byte_for_byte():
    samples = []
    with RawServer(lambda request: [answer_ok()]) as srv:
        client = make_client(srv.url, samples)
        client.call("POST /f", "POST", "/f", form={"email": "a+b@x.io", "name": "Zoë & co"})
        client.call("POST /j", "POST", "/j", json={"progress": 12.5, "title": "Amélie"})
        client.call("DELETE /d", "DELETE", "/d")
    form, body_json, delete = srv.received
    assert form.body == b"email=a%2Bb%40x.io&name=Zo%C3%AB+%26+co"
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert body_json.body == b'{"progress": 12.5, "title": "Am\\u00e9lie"}'
    assert body_json.headers["content-type"] == "application/json"
    for request in (form, body_json):
        assert request.method == "POST" and request.headers["content-length"] == str(len(request.body))
    assert delete.headers["content-length"] == "0" and delete.body == b""
    assert [s.error for s in samples] == ["", "", ""] and len(srv.peers) == 1


def test_a_chunked_answer_in_pieces_with_a_trailer_is_read_whole_on_one_connection():
    def answer(request):
        return [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            b'7;ext=1\r\n{"ok": \r\n',
            b"5\r\ntrue}\r\n",
            b"0\r\nX-Trailer: t\r\n\r\n",
        ]

    samples = []
    with RawServer(answer) as srv:
        client = make_client(srv.url, samples)
        replies = [client.call("GET /c", "GET", "/c") for _ in range(3)]
    assert [r.json() for r in replies] == [{"ok": True}] * 3
    assert [s.error for s in samples] == [""] * 3 and len(srv.peers) == 1


def test_a_connection_close_answer_opens_a_new_connection_for_the_next_call():
    samples = []
    with RawServer(lambda request: [answer_ok(extra=b"Connection: close\r\n"), CLOSE]) as srv:
        client = make_client(srv.url, samples)
        replies = [client.call("GET /ok", "GET", "/ok") for _ in range(3)]
    assert [r.json() for r in replies] == [{"ok": True}] * 3
    assert [s.error for s in samples] == [""] * 3
    assert [r.connection for r in srv.received] == [1, 2, 3]


@pytest.mark.parametrize(
    "chunks",
    [
        [answer_ok(version=b"HTTP/1.0")],
        [b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n", b'{"ok": true}', CLOSE],
    ],
    ids=["content-length, left open", "ends at close"],
)
def test_http_1_0_answers_are_read_and_their_connection_not_reused(chunks):
    samples = []
    with RawServer(lambda request: chunks) as srv:
        client = make_client(srv.url, samples)
        replies = [client.call("GET /ok", "GET", "/ok") for _ in range(2)]
    assert [r.json() for r in replies] == [{"ok": True}] * 2 and [s.error for s in samples] == ["", ""]
    assert [r.connection for r in srv.received] == [1, 2]  # HTTP/1.0 without keep-alive is one request each


@pytest.mark.parametrize(
    "cut",
    [
        [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b'{"ok": tr', CLOSE],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b'c\r\n{"ok": tr', CLOSE],
    ],
    ids=["content-length", "chunked"],
)
def test_an_answer_cut_mid_body_is_one_read_error_and_the_next_call_reconnects(cut):
    samples = []
    with RawServer(lambda request: cut if request.connection == 1 else [answer_ok()]) as srv:
        client = make_client(srv.url, samples)
        first = client.call("GET /ok", "GET", "/ok")
        second = client.call("GET /ok", "GET", "/ok")
    assert (first.status, first.error) == (0, "read")
    assert [(s.status, s.error, s.message) for s in samples] == [
        (0, "read", "connection closed mid-body"),
        (200, "", ""),
    ]
    assert second.json() == {"ok": True} and [r.connection for r in srv.received] == [1, 2]
