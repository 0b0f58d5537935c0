"""Drive the cdf-syncd emulator with the official Python SDK (cognite-sdk 8.22.0).

The SDK is the reference client nobody here wrote: if it works against the emulator, the
emulator speaks CDF's dialect (envelopes, error shapes, gzip bodies, upload URLs, token
refresh). Every test checks the SDK's view *and* the emulator's own record
(`GET /_emulator/files`, `GET /_emulator/counters`). What the SDK sends and expects is
written down in SDK-NOTES.md next to this file.

Run: `CDF_SYNCD_BIN=target/debug/cdf-syncd pytest tests/sdk -q` (the binary defaults to
`target/debug/cdf-syncd` under the repo root).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import selectors
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cognite.client import ClientConfig, CogniteClient, global_config
from cognite.client.credentials import OAuthClientCredentials, Token
from cognite.client.data_classes.data_modeling import NodeId
from cognite.client.data_classes.data_modeling.cdm.v1 import CogniteFileApply
from cognite.client.data_classes.data_modeling.extractor_extensions.v1 import (
    CogniteExtractorFile,
    CogniteExtractorFileApply,
)
from cognite.client.exceptions import (
    CogniteAPIError,
    CogniteDuplicatedError,
    CogniteFileUploadError,
    CogniteOAuthError,
    CogniteProjectAccessError,
)

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID = "cdf-syncd-demo"
CLIENT_SECRET = "demo-secret"
PROJECT = "demo"
MIB = 1024 * 1024
TEXT, BINARY = "text/plain", "application/octet-stream"
MIN_PART = 1 * MIB  # what the shared emulator is started with
SPACE = "sdk-conformance"  # instance space of CogniteFile nodes (the emulator needs no space object)
STARTUP_TIMEOUT = 30.0

# No PyPI round trip from every ClientConfig; back off at most 2 s (not 60 s) between the
# SDK's retries, so that a misbehaving emulator fails a test in seconds, not minutes.
global_config.disable_pypi_version_check = True
global_config.max_retry_backoff = 2


def wait_until(what: str, check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Emulator:
    """One `cdf-syncd emulator` process on a free loopback port."""

    def __init__(self, data_dir: Path, *flags: str) -> None:
        binary = Path(os.environ.get("CDF_SYNCD_BIN", "target/debug/cdf-syncd"))
        if not binary.is_absolute():
            binary = REPO / binary
        if not binary.is_file():
            pytest.fail(f"emulator binary {binary} not found: run `cargo build` or set CDF_SYNCD_BIN")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{data_dir.name}.stderr.log"
        self._log = self.log_path.open("wb")
        cmd = [str(binary), "emulator", "--listen", "127.0.0.1:0", "--data", str(data_dir), *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
        try:
            line = self._first_line()
        except BaseException:
            self.stop()
            raise
        prefix = "listening on "
        if not line.startswith(prefix):
            self.stop()
            pytest.fail(f"unexpected first stdout line {line!r} from {cmd}; stderr:\n{self.stderr_tail()}")
        self.base_url = line[len(prefix) :].strip().rstrip("/")

    def _first_line(self) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"emulator printed no 'listening on' line within {STARTUP_TIMEOUT}s; stderr:\n{self.stderr_tail()}"
                )
            if not sel.select(timeout=left):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                code = self.proc.wait(timeout=5)
                pytest.fail(f"emulator exited (code {code}) before listening; stderr:\n{self.stderr_tail()}")
            buf += chunk
        sel.close()
        return buf.split(b"\n", 1)[0].decode()

    def stderr_tail(self, lines: int = 40) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()

    # --- the emulator's inspection endpoints (no auth) ---

    def _get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=10) as res:
            return json.load(res)

    def files(self) -> list[dict[str, Any]]:
        body = self._get_json("/_emulator/files")
        if isinstance(body, dict):  # tolerate {"items": [...]} as well as a bare list
            body = body.get("items", body.get("files", []))
        return body

    def file(self, file_id: int) -> dict[str, Any]:
        matches = [f for f in self.files() if f["id"] == file_id]
        assert len(matches) == 1, f"emulator lists {len(matches)} files with id {file_id}"
        return matches[0]

    def uploaded_file(self, file_id: int) -> dict[str, Any]:
        """The file once the emulator reports `uploaded: true` (it may lag)."""
        return wait_until(f"file {file_id} uploaded", lambda: (f := self.file(file_id))["uploaded"] and f)

    def counters(self) -> dict[str, Any]:
        return self._get_json("/_emulator/counters")

    def token(self) -> str:
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        ).encode()
        with urllib.request.urlopen(self.base_url + "/oauth2/token", data=form, timeout=10) as res:
            return json.load(res)["access_token"]

    def client(self, leeway: int = 30, project: str = PROJECT, secret: str = CLIENT_SECRET) -> CogniteClient:
        creds = OAuthClientCredentials(
            token_url=f"{self.base_url}/oauth2/token",
            client_id=CLIENT_ID,
            client_secret=secret,
            scopes=[f"{self.base_url}/.default"],
            token_expiry_leeway_seconds=leeway,
        )
        return CogniteClient(self._config(creds, project))

    def _config(self, credentials: Any, project: str = PROJECT) -> ClientConfig:
        return ClientConfig(
            client_name="cdf-syncd-sdk-conformance",
            project=project,
            credentials=credentials,
            base_url=self.base_url,
            timeout=30,
            file_transfer_timeout=60,
        )


def request_count(counters: dict[str, Any], endpoint: str, status_prefix: str = "") -> int:
    """Requests to `endpoint` (e.g. "POST files/initmultipartupload") whose status starts with `status_prefix`."""
    by_status = counters.get("requests", {}).get(endpoint, {})
    return sum(n for status, n in by_status.items() if str(status).startswith(status_prefix))


def failed_requests(counters: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Every endpoint that answered a status >= 400, with those statuses."""
    bad = {}
    for endpoint, by_status in counters.get("requests", {}).items():
        errors = {str(s): n for s, n in by_status.items() if int(s) >= 400 and n}
        if errors:
            bad[endpoint] = errors
    return bad


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # --strict-headers: what real cloud storage rejects is rejected here too, so the
    # reference client passing proves those rules reject nothing a real client sends.
    emu = Emulator(tmp_path_factory.mktemp("emu") / "data", "--min-part-size", "1MiB", "--strict-headers")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def client(emulator: Emulator) -> CogniteClient:
    return emulator.client()


@pytest.fixture
def uid(request: pytest.FixtureRequest) -> str:
    """A prefix unique to the test, for externalIds and directories."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


# --- classic files ----------------------------------------------------------------------


def test_upload_bytes(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    content = os.urandom(200_000)
    md = client.files.upload_bytes(
        content,
        name="bytes.bin",
        external_id=uid,
        directory=f"/sdk/{uid}",
        source="sdk-test",
        mime_type="application/octet-stream",
        metadata={"kind": "bytes"},
    )
    assert md.id and md.external_id == uid and md.name == "bytes.bin"
    f = emulator.uploaded_file(md.id)
    assert f["externalId"] == uid
    assert f["size"] == len(content)
    assert f["sha256"] == sha256(content)
    assert f["directory"] == f"/sdk/{uid}"
    assert f["mimeType"] == "application/octet-stream"
    assert f["metadata"] == {"kind": "bytes"}
    assert f["contentWrites"] == 1


def test_upload_bytes_without_mime_type(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    """A file without mimeType: the SDK then PUTs with no Content-Type at all (SDK-NOTES flag 5),
    as extractor-utils does (PR #523 adds the header only `if mime_type is not None`). The
    official clients' way must pass --strict-headers."""
    content = b"no mime type here\n" * 100
    md = client.files.upload_bytes(content, name="plain", external_id=uid)
    f = emulator.uploaded_file(md.id)
    assert f["sha256"] == sha256(content)
    assert f.get("mimeType") is None


def test_upload_path(client: CogniteClient, emulator: Emulator, uid: str, tmp_path: Path) -> None:
    content = os.urandom(300_000)
    path = tmp_path / "on-disk.dat"
    path.write_bytes(content)
    before = emulator.counters()
    md = client.files.upload(path, external_id=uid, directory=f"/sdk/{uid}", metadata={"from": "path"})
    assert md.name == "on-disk.dat"
    f = emulator.uploaded_file(md.id)
    assert (f["size"], f["sha256"]) == (len(content), sha256(content))
    assert f["name"] == "on-disk.dat"
    assert f["metadata"] == {"from": "path"}
    after = emulator.counters()
    # 8.22.0 uploads every path through the multipart endpoints, even below 5 MiB (1 part).
    for endpoint in ("POST files/initmultipartupload", "POST files/completemultipartupload"):
        assert request_count(after, endpoint, "2") == request_count(before, endpoint, "2") + 1, endpoint


def test_upload_empty_path(client: CogniteClient, emulator: Emulator, uid: str, tmp_path: Path) -> None:
    """A 0-byte file goes out as parts=1 with a Content-Length: 0 part (SDK-NOTES flag 6)."""
    path = tmp_path / "empty"
    path.write_bytes(b"")
    md = client.files.upload(path, external_id=uid)
    f = emulator.uploaded_file(md.id)
    assert (f["size"], f["sha256"]) == (0, sha256(b""))


def test_multipart_upload_session_two_parts(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    part0 = os.urandom(MIN_PART + 12_345)  # non-last part: at least the minimum
    part1 = os.urandom(70_001)  # last part may be short
    with client.files.multipart_upload_session(
        name="two-parts.bin", parts=2, external_id=uid, directory=f"/sdk/{uid}"
    ) as session:
        # Out of order on purpose: the emulator must assemble by part index.
        session.upload_part(1, part1)
        session.upload_part(0, part0)
    file_id = session.file_metadata.id
    f = emulator.uploaded_file(file_id)
    assert f["size"] == len(part0) + len(part1)
    assert f["sha256"] == sha256(part0 + part1)
    assert client.files.download_bytes(id=file_id) == part0 + part1


def test_multipart_rejects_short_non_last_part(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    """A non-last part below the minimum: a part PUT or the complete must fail, and no content lands."""
    session = client.files.multipart_upload_session(name="short.bin", parts=2, external_id=uid)
    with pytest.raises((CogniteAPIError, CogniteFileUploadError)) as err, session:
        session.upload_part(0, os.urandom(MIN_PART - 1))
        session.upload_part(1, os.urandom(10))
    assert 400 <= err.value.code < 500, err.value
    f = emulator.file(session.file_metadata.id)
    assert f["uploaded"] is False
    assert f.get("size") is None and f["contentWrites"] == 0


def test_retrieve(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    md = client.files.upload_bytes(
        b"retrieve me",
        name="r.txt",
        external_id=uid,
        directory=f"/sdk/{uid}",
        mime_type="text/plain",
        metadata={"a": "1"},
    )
    emulator.uploaded_file(md.id)
    by_id = client.files.retrieve(id=md.id)
    by_xid = client.files.retrieve(external_id=uid)
    for got in (by_id, by_xid):
        assert got is not None
        assert (got.id, got.external_id, got.name) == (md.id, uid, "r.txt")
        assert (got.directory, got.mime_type, got.metadata) == (f"/sdk/{uid}", "text/plain", {"a": "1"})
        assert got.uploaded is True
        assert got.created_time > 0 and got.last_updated_time >= got.created_time
    # An unknown id is "not found" in CDF's shape, which the SDK turns into None.
    assert client.files.retrieve(external_id=f"{uid}-does-not-exist") is None
    known = {f["id"] for f in emulator.files()}
    assert client.files.retrieve(id=next(i for i in itertools.count(1) if i not in known)) is None


def test_list_by_directory_prefix(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    root = f"/sdk/{uid}"
    wanted = {
        client.files.upload_bytes(b"1", name="1", external_id=f"{uid}-1", mime_type=TEXT, directory=f"{root}/a").id,
        client.files.upload_bytes(b"2", name="2", external_id=f"{uid}-2", mime_type=TEXT, directory=f"{root}/a/b").id,
        client.files.upload_bytes(b"3", name="3", external_id=f"{uid}-3", mime_type=TEXT, directory=f"{root}/ab").id,
    }
    other = client.files.upload_bytes(
        b"4", name="4", external_id=f"{uid}-4", mime_type=TEXT, directory=f"/sdk/x{uid}/a"
    ).id
    found = client.files.list(directory_prefix=f"{root}/a", limit=None)
    assert {f.id for f in found} == wanted  # a case-sensitive string prefix, so ".../ab" matches too
    assert other not in {f.id for f in found}
    assert all(f.directory.startswith(f"{root}/a") for f in found)
    assert len(client.files.list(directory_prefix=f"{root}/A", limit=None)) == 0
    # Combined with uploaded=true once the emulator reports them uploaded.
    for file_id in wanted:
        emulator.uploaded_file(file_id)
    assert {f.id for f in client.files.list(directory_prefix=root, uploaded=True, limit=None)} == wanted
    # The default page size of files.list is 25; limit=2 must cut.
    assert len(client.files.list(directory_prefix=root, limit=2)) == 2


def test_download_bytes(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    content = os.urandom(512 * 1024 + 7)
    md = client.files.upload_bytes(content, name="dl.bin", external_id=uid, mime_type=BINARY)
    emulator.uploaded_file(md.id)
    assert client.files.download_bytes(id=md.id) == content
    assert client.files.download_bytes(external_id=uid) == content
    urls = client.files.retrieve_download_urls(id=[md.id], extended_expiration=True)
    assert set(urls) == {md.id} and urls[md.id].startswith("http")


def test_overwrite(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    v1, v2 = b"version one\n" * 50, b"version two, longer\n" * 70
    first = client.files.upload_bytes(
        v1,
        name="a.txt",
        external_id=uid,
        directory=f"/sdk/{uid}",
        source="src-1",
        mime_type="text/plain",
        metadata={"v": "1", "old": "x"},
    )
    emulator.uploaded_file(first.id)
    second = client.files.upload_bytes(
        v2,
        name="b.txt",
        external_id=uid,
        directory=f"/sdk/{uid}/moved",
        source="src-2",
        mime_type="text/plain",
        metadata={"v": "2"},
        overwrite=True,
    )
    assert second.id == first.id
    f = wait_until(
        "new content, uploaded", lambda: (x := emulator.file(first.id))["sha256"] == sha256(v2) and x["uploaded"] and x
    )
    assert f["size"] == len(v2)
    assert f["contentWrites"] == 2
    assert f["name"] == "b.txt"
    assert f["metadata"] == {"v": "2"}  # replaced in full, not merged
    # CDF's overwrite does not change directory or source (CDF-API.md §0 item 10).
    assert f["directory"] == f"/sdk/{uid}"
    assert f["source"] == "src-1"
    assert [x["id"] for x in emulator.files() if x.get("externalId") == uid] == [first.id]
    got = client.files.retrieve(external_id=uid)
    assert got is not None and got.metadata == {"v": "2"}
    assert client.files.download_bytes(id=first.id) == v2


def test_duplicate_external_id(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    original = b"the first one"
    first = client.files.upload_bytes(original, name="dup.txt", external_id=uid, mime_type=TEXT)
    emulator.uploaded_file(first.id)
    with pytest.raises(CogniteDuplicatedError) as err:
        client.files.upload_bytes(b"the second one", name="dup.txt", external_id=uid, mime_type=TEXT)
    assert err.value.code == 409
    assert err.value.duplicated == [{"externalId": uid}]
    assert err.value.x_request_id  # every reply carries x-request-id
    with pytest.raises(CogniteDuplicatedError):
        client.files.multipart_upload_session(name="dup.txt", parts=1, external_id=uid)
    same = [x for x in emulator.files() if x.get("externalId") == uid]
    assert len(same) == 1 and same[0]["sha256"] == sha256(original) and same[0]["contentWrites"] == 1


# --- data modeling: CogniteFile nodes ---------------------------------------------------


def apply_file_node(client: CogniteClient, xid: str, **props: Any) -> NodeId:
    res = client.data_modeling.instances.apply(CogniteFileApply(space=SPACE, external_id=xid, **props))
    assert [(n.space, n.external_id) for n in res.nodes] == [(SPACE, xid)]
    return NodeId(SPACE, xid)


def emulator_file_by_instance(emulator: Emulator, node: NodeId) -> dict[str, Any]:
    want = {"space": node.space, "externalId": node.external_id}
    matches = [f for f in emulator.files() if f.get("instanceId") == want]
    assert len(matches) == 1, f"emulator lists {len(matches)} files for instance {want}"
    return matches[0]


def test_upload_content_bytes_by_instance_id(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    node = apply_file_node(client, uid, name="dm.txt", mime_type="text/plain", directory=f"/sdk/{uid}")
    content = b"content of a CogniteFile\n" * 40
    md = client.files.upload_content_bytes(content, instance_id=node)
    assert md.instance_id == node
    f = emulator.uploaded_file(emulator_file_by_instance(emulator, node)["id"])
    assert (f["size"], f["sha256"]) == (len(content), sha256(content))
    assert f["name"] == "dm.txt" and f["mimeType"] == "text/plain"
    got = client.files.retrieve(instance_id=node)
    assert got is not None and got.instance_id == node and got.id == f["id"]
    assert client.files.download_bytes(instance_id=node) == content


def test_upload_content_path_by_instance_id(
    client: CogniteClient, emulator: Emulator, uid: str, tmp_path: Path
) -> None:
    node = apply_file_node(client, uid, name="dm-path.bin")
    content = os.urandom(150_000)
    path = tmp_path / "dm-path.bin"
    path.write_bytes(content)
    client.files.upload_content(path, instance_id=node)  # multiuploadlink?parts=1 + complete
    f = emulator.uploaded_file(emulator_file_by_instance(emulator, node)["id"])
    assert (f["size"], f["sha256"]) == (len(content), sha256(content))


def test_cognite_extractor_file_upload_and_reupload_to_the_same_node(
    client: CogniteClient, emulator: Emulator, uid: str
) -> None:
    """The data-modeling flow of cdf-syncd through a view that implements CogniteFile:
    the node written through CogniteExtractorFile (with extractedData), content by
    instanceId, then new content to the same node (same file id, no second file)."""
    node = NodeId(SPACE, uid)
    apply = CogniteExtractorFileApply(
        space=SPACE, external_id=uid, name="x.csv", mime_type="text/csv", extracted_data={"line": "1"}
    )
    first = b"a,b\n1,2\n"
    client.data_modeling.files.upload_bytes(first, apply)
    f = emulator.uploaded_file(emulator_file_by_instance(emulator, node)["id"])
    assert f["sha256"] == sha256(first)
    got = client.data_modeling.instances.retrieve_nodes(node, node_cls=CogniteExtractorFile)
    assert got is not None and got.extracted_data == {"line": "1"} and got.name == "x.csv"

    second = b"a,b\n3,4\n5,6\n"
    client.data_modeling.files.upload_bytes(second, apply)
    again = emulator.uploaded_file(emulator_file_by_instance(emulator, node)["id"])
    assert again["id"] == f["id"] and again["sha256"] == sha256(second) and again["contentWrites"] == 2
    assert client.data_modeling.files.download_bytes(node) == second


# --- emulators with special flags ---------------------------------------------------------


@pytest.fixture
def lagging_emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path / "data", "--dm-propagation-lag", "500ms")
    yield emu
    emu.stop()


def test_dm_propagation_lag_is_retried_by_sdk(lagging_emulator: Emulator, uid: str) -> None:
    """Right after the node is created, uploadlink answers not-found; the SDK's high-level
    helper recognises that shape, checks the node via models/instances/byids and retries."""
    client = lagging_emulator.client()
    content = b"propagated eventually"
    client.data_modeling.files.upload_bytes(content, CogniteFileApply(space=SPACE, external_id=uid, name="lag.txt"))
    node = NodeId(SPACE, uid)
    f = lagging_emulator.uploaded_file(emulator_file_by_instance(lagging_emulator, node)["id"])
    assert f["sha256"] == sha256(content)
    counters = lagging_emulator.counters()
    assert request_count(counters, "POST files/uploadlink", "4") >= 1, "the lag was never observed"
    assert request_count(counters, "POST files/uploadlink", "2") == 1


@pytest.fixture
def short_token_emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path / "data", "--token-lifetime", "2s")
    yield emu
    emu.stop()


def test_token_refresh(short_token_emulator: Emulator, uid: str) -> None:
    emu = short_token_emulator
    # First: an expired token really is refused, so the refresh below is not a formality.
    token = emu.token()

    def expired() -> bool:
        req = urllib.request.Request(
            f"{emu.base_url}/api/v1/projects/{PROJECT}/files/list",
            method="POST",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=10).close()
            return False
        except urllib.error.HTTPError as e:
            assert e.code == 401, f"an expired token got {e.code}, not 401"
            return True

    assert not expired()
    wait_until("the 2s token to expire", expired, timeout=6, interval=0.1)

    # The SDK refreshes when less than the leeway (1 s) is left, so each token serves ~1 s.
    client = emu.client(leeway=1)
    before = emu.counters()["tokens_issued"]
    deadline = time.monotonic() + 20
    calls = 0
    while emu.counters()["tokens_issued"] - before < 3:  # three tokens = two refreshes
        assert time.monotonic() < deadline, "the SDK did not refresh its token within 20 s"
        content = f"call {calls}".encode()
        md = client.files.upload_bytes(content, name=f"t{calls}", external_id=f"{uid}-{calls}", directory=f"/sdk/{uid}")
        assert client.files.retrieve(id=md.id) is not None
        assert client.files.download_bytes(id=md.id) == content
        calls += 1
        time.sleep(0.1)  # pacing between rounds of calls, not a wait for a condition
    counters = emu.counters()
    assert counters["tokens_issued"] - before >= 3
    failures = failed_requests(counters)
    # Only the probe of the expired token above may have failed.
    assert [s for by_status in failures.values() for s, n in by_status.items() for _ in range(n)] == ["401"], failures
    assert calls >= 2


# --- extraction pipelines -------------------------------------------------------------------


def test_extraction_pipeline_config_revisions(client: CogniteClient, emulator: Emulator, uid: str) -> None:
    """cdf-syncd's remote config: revisions created and read back as the SDK does it."""
    from cognite.client.data_classes import ExtractionPipelineConfigWrite

    with pytest.raises(CogniteAPIError) as err:
        client.extraction_pipelines.config.retrieve(external_id=uid)
    assert err.value.code == 404
    first = client.extraction_pipelines.config.create(
        ExtractionPipelineConfigWrite(external_id=uid, config='[upload]\nmax_concurrent_files = 2\n', description="one")
    )
    second = client.extraction_pipelines.config.create(ExtractionPipelineConfigWrite(external_id=uid, config="[sync]\n"))
    assert (first.revision, second.revision) == (1, 2)
    latest = client.extraction_pipelines.config.retrieve(external_id=uid)
    assert (latest.external_id, latest.revision, latest.config) == (uid, 2, "[sync]\n")
    assert latest.created_time >= first.created_time
    old = client.extraction_pipelines.config.retrieve(external_id=uid, revision=1)
    assert (old.config, old.description) == ('[upload]\nmax_concurrent_files = 2\n', "one")
    assert [r.revision for r in client.extraction_pipelines.config.list(external_id=uid)] == [2, 1]
    reverted = client.extraction_pipelines.config.revert(external_id=uid, revision=1)
    assert (reverted.revision, reverted.config) == (3, old.config)
    counters = emulator.counters()
    assert request_count(counters, "GET extpipes/config", "2") == 2
    assert request_count(counters, "POST extpipes/config", "2") == 2


# --- auth errors in the shapes the SDK understands ------------------------------------------


def test_wrong_secret_is_an_oauth_error(emulator: Emulator) -> None:
    client = emulator.client(secret="not-the-secret")
    with pytest.raises(CogniteOAuthError) as err:
        client.files.list(limit=1)
    assert "invalid_client" in str(err.value)


def test_unknown_token_is_401(emulator: Emulator) -> None:
    client = CogniteClient(emulator._config(Token("not-a-token")))
    with pytest.raises(CogniteProjectAccessError):  # the SDK's reading of a 401
        client.files.list(limit=1)


def test_unknown_project_is_403(emulator: Emulator) -> None:
    client = emulator.client(project="no-such-project")
    with pytest.raises(CogniteAPIError) as err:
        client.files.list(limit=1)
    assert err.value.code == 403
