"""Download (resume, checksum, credentials, HTTP errors) against a local HTTP server on
127.0.0.1, and safe extraction against malicious archives."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from mrisr.cli import main
from mrisr.download import auth_headers, fetch, materialise, redact
from mrisr.errors import InputError
from mrisr.io.archive import safe_extract

TOKEN = "s3cr3t-token-value"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


PAYLOAD = zip_bytes({"ds/subj1/a.txt": b"A" * 5000, "ds/subj2/b.txt": bytes(range(256)) * 40})


class Server:
    """A tiny HTTP server: serves `files`, honours Range (unless told not to), can require
    a bearer token, and records every request's headers."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.cut_after: int | None = None  # send this many body bytes, then drop the connection
        self.wrong_range = False  # answer 206 from byte 0 whatever was asked
        self.require_token: str | None = None
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, **dict(self.headers)})
                if server.require_token and self.headers.get("Authorization") != f"Bearer {server.require_token}":
                    self.send_error(403, "Forbidden")
                    return
                data = server.files.get(self.path.split("?")[0])
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = 0 if server.wrong_range else int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_after is not None:
                    body, server.cut_after = body[:server.cut_after], None  # once
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    s.files["/data/ds.zip"] = PAYLOAD
    yield s
    s.close()


def test_fetch_verifies_and_reuses(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "ds.zip"
    out = io.StringIO()
    fetch(f"{server.url}/data/ds.zip", dest, sha(PAYLOAD), out=out)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "ds.zip.part").exists()
    fetch(f"{server.url}/data/ds.zip", dest, sha(PAYLOAD), out=out)
    assert len(server.requests) == 1 and "already downloaded" in out.getvalue()


def test_resume_sends_only_the_rest(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "ds.zip"
    (tmp_path / "ds.zip.part").write_bytes(PAYLOAD[:3000])
    out = io.StringIO()
    fetch(f"{server.url}/data/ds.zip", dest, sha(PAYLOAD), out=out)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1]["Range"] == "bytes=3000-" and "resuming at byte 3000" in out.getvalue()


def test_interrupted_transfer_resumes_on_rerun(server: Server, tmp_path: Path) -> None:
    server.cut_after = 2500
    url, dest = f"{server.url}/data/ds.zip", tmp_path / "ds.zip"
    with pytest.raises(InputError, match="rerun to resume"):
        fetch(url, dest, sha(PAYLOAD), out=io.StringIO())
    assert (tmp_path / "ds.zip.part").stat().st_size == 2500 and not dest.exists()
    fetch(url, dest, sha(PAYLOAD), out=io.StringIO())
    assert dest.read_bytes() == PAYLOAD and server.requests[-1]["Range"] == "bytes=2500-"


def test_wrong_content_range_is_not_appended(server: Server, tmp_path: Path) -> None:
    server.wrong_range = True
    (tmp_path / "ds.zip.part").write_bytes(PAYLOAD[:3000])
    with pytest.raises(InputError, match="to a request from byte 3000; partial file removed"):
        fetch(f"{server.url}/data/ds.zip", tmp_path / "ds.zip", sha(PAYLOAD), out=io.StringIO())
    assert not (tmp_path / "ds.zip.part").exists()


def test_server_ignoring_range_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    server.honour_range = False
    (tmp_path / "ds.zip.part").write_bytes(b"junk that must not be kept")
    dest = fetch(f"{server.url}/data/ds.zip", tmp_path / "ds.zip", sha(PAYLOAD), out=io.StringIO())
    assert dest.read_bytes() == PAYLOAD


def test_complete_partial_file_after_416(server: Server, tmp_path: Path) -> None:
    """A transfer that finished just before the job died: the server answers 416."""
    (tmp_path / "ds.zip.part").write_bytes(PAYLOAD)
    dest = fetch(f"{server.url}/data/ds.zip", tmp_path / "ds.zip", sha(PAYLOAD), out=io.StringIO())
    assert dest.read_bytes() == PAYLOAD


def test_corrupt_transfer_fails_before_extraction(server: Server, tmp_path: Path) -> None:
    corrupt = bytearray(PAYLOAD)
    corrupt[100] ^= 0xFF
    server.files["/data/ds.zip"] = bytes(corrupt)
    out_dir = tmp_path / "raw"
    with pytest.raises(InputError, match=f"sha256 mismatch: expected {sha(PAYLOAD)}, got {sha(bytes(corrupt))}"):
        materialise({"url": f"{server.url}/data/ds.zip", "sha256": sha(PAYLOAD)}, out_dir, tmp_path / "cache",
                    out=io.StringIO())
    assert not any(out_dir.iterdir())  # nothing extracted, no marker
    assert not list((tmp_path / "cache").iterdir())  # the corrupt file is not kept for "resuming"


def test_corrupt_resumed_prefix_is_caught(server: Server, tmp_path: Path) -> None:
    """A wrong partial file + a correct tail still fails the checksum (the hash covers both)."""
    (tmp_path / "ds.zip.part").write_bytes(b"X" * 3000)
    with pytest.raises(InputError, match="sha256 mismatch"):
        fetch(f"{server.url}/data/ds.zip", tmp_path / "ds.zip", sha(PAYLOAD), out=io.StringIO())
    assert not (tmp_path / "ds.zip.part").exists()


def test_http_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        fetch(f"{server.url}/data/missing.zip?sig=abc", tmp_path / "m.zip", "0" * 64, out=io.StringIO())
    assert str(err.value) == f"{server.url}/data/missing.zip: HTTP 404 Not Found"  # query redacted
    with pytest.raises(InputError, match="cannot connect"):
        fetch("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", "0" * 64, out=io.StringIO())
    with pytest.raises(InputError, match="sha256 must be 64 hex digits"):
        fetch(f"{server.url}/data/ds.zip", tmp_path / "x.zip", "abc", out=io.StringIO())


def test_credentials_from_environment_never_printed(server: Server, tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    server.require_token = TOKEN
    url = f"{server.url}/data/ds.zip"
    monkeypatch.delenv("MRISR_TEST_TOKEN", raising=False)
    with pytest.raises(InputError, match=r"\$MRISR_TEST_TOKEN: credential environment variable is not set"):
        fetch(url, tmp_path / "ds.zip", sha(PAYLOAD), auth_env="MRISR_TEST_TOKEN", out=io.StringIO())
    with pytest.raises(InputError, match="HTTP 403"):
        fetch(url, tmp_path / "ds.zip", sha(PAYLOAD), out=io.StringIO())
    monkeypatch.setenv("MRISR_TEST_TOKEN", TOKEN)
    spec = json.dumps({"url": url, "sha256": sha(PAYLOAD), "auth_env": "MRISR_TEST_TOKEN"})
    assert main(["download", "--spec", spec, "--out-dir", str(tmp_path / "raw"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert server.requests[-1]["Authorization"] == f"Bearer {TOKEN}"
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert TOKEN not in (tmp_path / "raw/download.json").read_text()
    monkeypatch.setenv("MRISR_TEST_TOKEN", "Cookie: session=abc")
    assert auth_headers("MRISR_TEST_TOKEN") == {"Cookie": "session=abc"}
    assert redact("https://u:p@h.org:8443/a/b.tar.gz?X-Sig=1#f") == "https://h.org:8443/a/b.tar.gz"


def test_materialise_extracts_marks_and_replaces(server: Server, tmp_path: Path) -> None:
    out_dir = tmp_path / "raw"
    spec = {"url": f"{server.url}/data/ds.zip", "sha256": sha(PAYLOAD)}
    record = materialise(spec, out_dir, tmp_path / "cache", out=io.StringIO())
    assert record["entries"] == ["ds"] and (out_dir / "ds/subj2/b.txt").read_bytes() == bytes(range(256)) * 40
    assert json.loads((out_dir / "download.json").read_text())["sources"][0]["sha256"] == sha(PAYLOAD)
    # A new archive replaces what the old one extracted; files the user put beside it stay.
    (out_dir / "notes.txt").write_text("mine")
    new = zip_bytes({"ds/subj3/c.txt": b"C"})
    server.files["/data/ds.zip"] = new
    (tmp_path / "cache/ds.zip").unlink()
    materialise({**spec, "sha256": sha(new)}, out_dir, tmp_path / "cache", out=io.StringIO())
    assert sorted(p.name for p in (out_dir / "ds").iterdir()) == ["subj3"]
    assert (out_dir / "notes.txt").read_text() == "mine"


def test_hand_fetched_archives_and_lists(tmp_path: Path) -> None:
    a, b = tmp_path / "train.zip", tmp_path / "validate.tar.gz"
    a.write_bytes(zip_bytes({"train/1/x.txt": b"1"}))
    with tarfile.open(b, "w:gz") as tar:
        info = tarfile.TarInfo("validate/501/y.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"2"))
    record = materialise({"archive": [str(a), str(b)]}, tmp_path / "raw", tmp_path / "cache", out=io.StringIO())
    assert record["entries"] == ["train", "validate"] and (tmp_path / "raw/validate/501/y.txt").read_text() == "2"
    with pytest.raises(InputError, match="sha256 mismatch: expected 0{64}, got"):
        materialise({"archive": str(a), "sha256": "0" * 64}, tmp_path / "raw2", tmp_path / "cache", out=io.StringIO())
    with pytest.raises(InputError, match="archive not found"):
        materialise({"archive": str(tmp_path / "nope.zip")}, tmp_path / "raw3", tmp_path / "cache", out=io.StringIO())
    with pytest.raises(InputError, match="2 url.* need 2 sha256"):
        materialise({"url": ["http://a/x.zip", "http://a/y.zip"], "sha256": "0" * 64}, tmp_path / "r",
                    tmp_path / "c", out=io.StringIO())


# --- malicious and broken archives -------------------------------------------------------


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("members, problem", [
    ([(member("../evil.txt"), b"x")], "'..' in path refused"),
    ([(member("/tmp/evil.txt"), b"x")], "absolute path refused"),
    ([(member("ok/link", tarfile.SYMTYPE, "/etc"), b"")], "link to absolute path '/etc' refused"),
    ([(member("ok/link", tarfile.SYMTYPE, "../../.."), b"")], "points out of the target folder"),
    ([(member("ok/hard", tarfile.LNKTYPE, "../outside"), b"")], "points out of the target folder"),
    ([(member("ok/dev", tarfile.CHRTYPE), b"")], "device or FIFO refused"),
    # a link that stays inside (a/b -> the root), then one through it that would not:
    ([(member("a/b", tarfile.SYMTYPE, ".."), b""), (member("a/b/x", tarfile.SYMTYPE, ".."), b""),
      (member("a/b/x/evil.txt"), b"x")], "'a/b/x': link '..' points out of the target folder"),
])
def test_malicious_tar_is_refused(tmp_path: Path, members, problem: str) -> None:
    archive = tar_with(tmp_path / "evil.tar", *members)
    dest = tmp_path / "box" / "dest"
    with pytest.raises(InputError, match=problem) as err:
        safe_extract(archive, dest)
    assert str(err.value).startswith(str(archive))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "box" / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"x"


def test_malicious_zip_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    for name, problem in (("../evil.txt", "'..' in path refused"), ("/abs.txt", "absolute path refused"),
                          ("C:/win.txt", "absolute path refused")):
        archive = tmp_path / "evil.zip"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("good.txt", b"ok")
            zf.writestr(zipfile.ZipInfo(name), b"x")
        archive.write_bytes(buf.getvalue())
        dest = tmp_path / f"dest{len(problem)}"
        with pytest.raises(InputError, match=problem):
            safe_extract(archive, dest)
        assert not (dest / "good.txt").exists()  # checked first, extracted after
    link = zipfile.ZipInfo("ok/link")
    link.external_attr = (0o120777 << 16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    (tmp_path / "link.zip").write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="symbolic link refused"):
        safe_extract(tmp_path / "link.zip", tmp_path / "dlink")


def test_unsupported_and_corrupt_archives(tmp_path: Path) -> None:
    rar = tmp_path / "data.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00junk")
    with pytest.raises(InputError, match=r"data\.rar: unsupported archive type \.rar"):
        safe_extract(rar, tmp_path / "d1")
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    with pytest.raises(InputError, match="corrupt or truncated zip"):
        safe_extract(truncated, tmp_path / "d2")
    tgz = tmp_path / "cut.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("big.bin")
        data = bytes(range(256)) * 400
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tgz.write_bytes(buf.getvalue()[:200])
    with pytest.raises(InputError, match="corrupt or truncated tar"):
        safe_extract(tgz, tmp_path / "d3")
    # a signed URL's file name without a suffix is recognised by content
    plain = tmp_path / "download"
    plain.write_bytes(PAYLOAD)
    assert safe_extract(plain, tmp_path / "d4") == ["ds"]
