"""CI's performance guard: fails only on a gross regression, never on absolute times.

    python3 bench/guard.py BIN [--large-mib 200] [--small 2000] [--min-ratio 0.5] [--runs 3]

Standard library only. Against one emulator (`--discard`), in one temporary directory:

- large: one file; `cdf-syncd sync --once` vs a plain `curl -T` of the same file to an
  upload URL of the same emulator (the practical limit on this machine, this minute);
- small: files of 4-64 KiB in a nested tree; `sync --once` vs a plain client in this
  process that does what any uploader must per file (POST files, then PUT the bytes) over
  one keep-alive connection, one file after the other.

Each side keeps its best of --runs runs (a neighbour's build slows a run, it never speeds
one up), every cdf-syncd run is checked in the emulator (number and sizes of uploaded
files), and the guard fails when cdf-syncd's best is below --min-ratio of the plain
client's best in either workload.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

KIB, MIB = 1024, 1024 * 1024


class Emulator:
    def __init__(self, binary: str) -> None:
        self.proc = subprocess.Popen(
            [binary, "emulator", "--listen", "127.0.0.1:0", "--discard"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise SystemExit(f"guard: the emulator did not start ({line!r})")
        self.base = line[len("listening on "):].strip().rstrip("/")
        self.netloc = urllib.parse.urlsplit(self.base).netloc

    def call(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> object:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=60) as res:
            body = res.read()
        return json.loads(body) if body else None

    def token(self) -> str:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "cdf-syncd-demo",
                                       "client_secret": "demo-secret"}).encode()
        return self.call("/oauth2/token", data=form)["access_token"]  # type: ignore[index]

    def uploaded_sizes(self) -> list[int]:
        body = self.call("/_emulator/files")
        files = body.get("items", body) if isinstance(body, dict) else body
        return sorted(f.get("size") or 0 for f in files if f.get("uploaded"))  # type: ignore[union-attr]

    def reset(self) -> None:
        self.call("/_emulator/reset", data=b"")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def old(path: Path) -> None:
    t = time.time() - 120
    os.utime(path, (t, t))


def sync_once(binary: str, emu: Emulator, root: Path, work: Path) -> float:
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    cfg = work / "cfg.toml"
    cfg.write_text(f"""[cdf]
base_url = "{emu.base}"
project = "demo"
allow_insecure_http = true
[cdf.auth]
token_url = "{emu.base}/oauth2/token"
client_id = "cdf-syncd-demo"
client_secret_env = "GUARD_SECRET"
[[roots]]
id = "guard"
path = "{root}"
[state]
dir = "{state}"
[log]
level = "warn"
""")
    t0 = time.monotonic()
    res = subprocess.run([binary, "sync", "--once", "--config", str(cfg)], capture_output=True,
                         env={**os.environ, "GUARD_SECRET": "demo-secret"}, timeout=600)
    took = time.monotonic() - t0
    if res.returncode != 0:
        raise SystemExit(f"guard: cdf-syncd sync --once failed ({res.returncode}): {res.stderr.decode()[-2000:]}")
    return took


def plain_put(emu: Emulator, path: Path) -> float:
    token = emu.token()
    meta = emu.call("/api/v1/projects/demo/files", data=json.dumps({"name": path.name}).encode(),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t0 = time.monotonic()
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(path),
                    "-H", "Content-Type: application/octet-stream", meta["uploadUrl"]],  # type: ignore[index]
                   check=True, timeout=600)
    return time.monotonic() - t0


def plain_small(emu: Emulator, paths: list[Path]) -> float:
    """POST files + PUT per file, sequentially, over one keep-alive connection."""
    token = emu.token()
    conn = http.client.HTTPConnection(emu.netloc, timeout=60)
    t0 = time.monotonic()
    for p in paths:
        conn.request("POST", "/api/v1/projects/demo/files", body=json.dumps({"name": p.name}),
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        res = conn.getresponse()
        url = urllib.parse.urlsplit(json.loads(res.read())["uploadUrl"])
        target = url.path + (f"?{url.query}" if url.query else "")
        conn.request("PUT", target, body=p.read_bytes(), headers={"Content-Type": "application/octet-stream"})
        put = conn.getresponse()
        put.read()
        if put.status >= 300:
            raise SystemExit(f"guard: the plain client's PUT got {put.status}")
    took = time.monotonic() - t0
    conn.close()
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--large-mib", type=int, default=200)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--min-ratio", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cdf-syncd-guard."))
    emu = Emulator(args.bin)
    try:
        rng = random.Random(7)
        large = work / "large"
        large.mkdir()
        big = large / "big.bin"
        with big.open("wb") as fh:
            for _ in range(args.large_mib):
                fh.write(rng.randbytes(MIB))
        old(big)
        small = work / "small"
        paths, sizes = [], []
        for i in range(args.small):
            p = small / f"d{i % 10}" / f"e{(i // 10) % 10}" / f"f{i:05}.bin"
            p.parent.mkdir(parents=True, exist_ok=True)
            size = rng.randint(4 * KIB, 64 * KIB)
            p.write_bytes(rng.randbytes(size))
            old(p)
            paths.append(p)
            sizes.append(size)

        def checked_sync(root: Path, want: list[int]) -> float:
            emu.reset()
            took = sync_once(args.bin, emu, root, work)
            got = emu.uploaded_sizes()
            if got != sorted(want):
                raise SystemExit(f"guard: cdf-syncd uploaded {len(got)} files ({sum(got)} bytes), "
                                 f"expected {len(want)} ({sum(want)} bytes)")
            return took

        syncd_l = min(checked_sync(large, [args.large_mib * MIB]) for _ in range(args.runs))
        plain_l = min(plain_put(emu, big) for _ in range(args.runs))
        syncd_s = min(checked_sync(small, sizes) for _ in range(args.runs))
        emu.reset()
        plain_s = min(plain_small(emu, paths) for _ in range(args.runs))
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)

    size = args.large_mib * MIB
    ratio_l, ratio_s = plain_l / syncd_l, plain_s / syncd_s
    print(f"large {args.large_mib} MiB: cdf-syncd {size / syncd_l / 1e6:.0f} MB/s, plain PUT (curl -T) "
          f"{size / plain_l / 1e6:.0f} MB/s: {ratio_l:.2f}x")
    print(f"small {args.small} files: cdf-syncd {args.small / syncd_s:.0f} files/s, plain sequential client "
          f"{args.small / plain_s:.0f} files/s: {ratio_s:.2f}x")
    failed = [w for w, r in (("large", ratio_l), ("small", ratio_s)) if r < args.min_ratio]
    if failed:
        print(f"guard: FAILED: cdf-syncd below {args.min_ratio}x of the plain client in {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"guard: ok (both at or above {args.min_ratio}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
