import pytest
from helpers import free_port

from amanflix_stress.engine.client import HttpClient, parse_base_url


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
