"""The benchmark suite's driver (run it through bench/run.sh, which builds and installs).

    suite.py --bin BIN --work DIR --results FILE [--quick] [--runs N]
             [--workloads large,small,mixed,latency,restart,ratelimit,tune]

For each selected workload it generates the files under DIR, runs every contender in turn
(contenders interleaved within each round, so a noisy neighbour hits all of them), checks
each run against the emulator's own record (/_emulator/files: number of uploaded files and
their sizes; a contender whose upload does not match gets no number), deletes the files,
and merges the measurements into FILE (JSON). bench/report.py turns FILE into the
BENCHMARKS.md section and the PNG charts.

Timing: cdf-syncd and curl are timed as whole processes (start to exit); the Python
contenders report the time from creating their client to the last upload returning
(their interpreter start and imports, 1-2 s, are left out: that favours them). CPU and
peak RSS come from wait4's rusage of the contender's process; RSS over time is sampled
from /proc/PID/status every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
OLD = 120  # seconds: generated files get an mtime this far back (older than stable_for)

# "Best settings" of the Python contenders, chosen with `--workloads tune` (BENCHMARKS.md).
SDK_UPLOAD = int(os.environ.get("BENCH_SDK_UPLOAD", "10"))
EXTRACTOR_PARALLELISM = int(os.environ.get("BENCH_EXTRACTOR_PARALLELISM", "10"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the emulator ---------------------------------------------------------------------


class Emulator:
    def __init__(self, binary: Path, work: Path) -> None:
        self.log = (work / "emulator.log").open("wb")
        self.proc = subprocess.Popen(
            [str(binary), "emulator", "--listen", "127.0.0.1:0", "--discard"],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise SystemExit(f"emulator did not start: {line!r}")
        self.base = line[len("listening on ") :].strip().rstrip("/")

    def _call(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=60) as res:
            body = res.read()
        return json.loads(body) if body else None

    def files(self) -> list[dict[str, Any]]:
        body = self._call("/_emulator/files")
        return body.get("items", body) if isinstance(body, dict) else body

    def counters(self) -> dict[str, Any]:
        return self._call("/_emulator/counters")

    def reset(self) -> None:
        self._call("/_emulator/reset", data=b"")

    def token(self) -> str:
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": "cdf-syncd-demo", "client_secret": "demo-secret"}
        ).encode()
        return self._call("/oauth2/token", data=form)["access_token"]

    def upload_url(self, name: str) -> str:
        body = json.dumps({"name": name, "mimeType": "application/octet-stream"}).encode()
        res = self._call(
            "/api/v1/projects/demo/files",
            data=body,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        return res["uploadUrl"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def verify(emu: Emulator, sizes: list[int]) -> str | None:
    """None when the emulator holds exactly these sizes as uploaded files, else what differs."""
    files = emu.files()
    got = sorted(f.get("size") or 0 for f in files if f.get("uploaded"))
    want = sorted(sizes)
    if got == want:
        return None
    return (
        f"emulator has {len(got)} uploaded files ({sum(got)} bytes) of {len(files)}, "
        f"expected {len(want)} ({sum(want)} bytes)"
    )


# --- measuring a process --------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) of a live process; {} once it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return {}
    return out


def measure(
    cmd: list[str], env: dict[str, str] | None = None, sample: bool = False, timeout: float = 1800
) -> dict[str, Any]:
    """Runs cmd; wall seconds, CPU seconds, peak RSS (KiB), stdout, and RSS samples if asked."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    samples: list[tuple[float, int]] = []
    hwm = [0]
    done = threading.Event()

    # Peak RSS is the last VmHWM read before exit (wait4's ru_maxrss would include the
    # forked Python parent's pages: Linux keeps the high-water mark across exec).
    def sampler() -> None:
        while not done.is_set():
            st = proc_status(proc.pid)
            if st:
                hwm[0] = max(hwm[0], st.get("VmHWM", 0))
                if sample:
                    samples.append((round(time.monotonic() - t0, 3), st.get("VmRSS", 0)))
            done.wait(0.05 if sample else 0.02)

    out: dict[str, bytes] = {}

    def reader(name: str, stream: Any) -> None:
        out[name] = stream.read()

    threads = [
        threading.Thread(target=reader, args=("stdout", proc.stdout)),
        threading.Thread(target=reader, args=("stderr", proc.stderr)),
    ]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    killer = threading.Timer(timeout, proc.kill)  # a hung contender fails instead of stalling the suite
    killer.start()
    _, status, ru = os.wait4(proc.pid, 0)
    killer.cancel()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for t in threads:
        t.join()
    return {
        "rc": proc.returncode,
        "wall": wall,
        "cpu": ru.ru_utime + ru.ru_stime,
        "maxrss_kib": hwm[0],
        "stdout": out.get("stdout", b"").decode(errors="replace"),
        "stderr": out.get("stderr", b"").decode(errors="replace")[-2000:],
        "rss": samples,
    }


# --- workloads --------------------------------------------------------------------------


def write_file(path: Path, size: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            n = min(left, 8 * MIB)
            fh.write(os.urandom(n) if n < 8 * MIB else rng.randbytes(n))
            left -= n
    t = time.time() - OLD
    os.utime(path, (t, t))


def gen_large(root: Path, size: int) -> list[int]:
    write_file(root / "large.bin", size, random.Random(1))
    return [size]


def gen_small(root: Path, count: int) -> list[int]:
    rng = random.Random(2)
    sizes = []
    for i in range(count):
        size = rng.randint(4 * KIB, 64 * KIB)
        path = root / f"d{i % 20:02}" / f"e{(i // 20) % 10}" / f"f{i:06}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        t = time.time() - OLD
        os.utime(path, (t, t))
        sizes.append(size)
    return sizes


def mixed_sizes() -> list[int]:
    """1,000 sizes from 0 bytes to 200 MiB, a decade at a time (about 1.6 GiB in all)."""
    rng = random.Random(3)
    sizes = [0] * 20
    sizes += [rng.randint(1, MIB) for _ in range(880)]
    sizes += [rng.randint(MIB, 10 * MIB) for _ in range(90)]
    sizes += [rng.randint(10 * MIB, 100 * MIB) for _ in range(9)]
    sizes += [200 * MIB]
    rng.shuffle(sizes)
    return sizes


def gen_mixed(root: Path) -> list[int]:
    rng = random.Random(4)
    sizes = mixed_sizes()
    for i, size in enumerate(sizes):
        write_file(root / f"m{i % 10}" / f"n{(i // 10) % 10}" / f"file{i:04}.dat", size, rng)
    return sizes


# --- contenders -------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bin = Path(args.bin)
        self.work = Path(args.work)
        self.emu = Emulator(self.bin, self.work)
        self.py_sdk = str(BENCH / ".venv-sdk/bin/python")
        self.py_ext = str(BENCH / ".venv-extractor/bin/python")
        log(f"emulator at {self.emu.base} (--discard)")

    def config(self, root: Path, state: Path, extra: str = "", stable_for: str | None = None) -> Path:
        cfg = self.work / "cfg.toml"
        stable = f'stable_for = "{stable_for}"\n' if stable_for else ""
        cfg.write_text(
            f"""[cdf]
base_url = "{self.emu.base}"
project = "demo"
allow_insecure_http = true
[cdf.auth]
token_url = "{self.emu.base}/oauth2/token"
client_id = "cdf-syncd-demo"
client_secret_env = "BENCH_SECRET"
[[roots]]
id = "bench"
path = "{root}"
directory_prefix = "/bench"
[sync]
{stable}[state]
dir = "{state}"
[log]
level = "warn"
{extra}"""
        )
        return cfg

    def run_syncd(self, root: Path, sample: bool) -> dict[str, Any]:
        state = self.work / "state"
        shutil.rmtree(state, ignore_errors=True)
        cfg = self.config(root, state)
        m = measure([str(self.bin), "sync", "--once", "--config", str(cfg)], {"BENCH_SECRET": "demo-secret"}, sample)
        m["seconds"] = m["wall"]
        shutil.rmtree(state, ignore_errors=True)
        return m

    def run_python(self, py: str, script: str, root: Path, extra: list[str], sample: bool) -> dict[str, Any]:
        m = measure([py, str(BENCH / script), self.emu.base, str(root), *extra], sample=sample)
        if m["rc"] == 0:
            m["seconds"] = json.loads(m["stdout"].strip().splitlines()[-1])["seconds"]
        return m

    def run_curl(self, root: Path, sample: bool) -> dict[str, Any]:
        url = self.emu.upload_url("large.bin")
        m = measure(
            ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(root / "large.bin"),
             "-H", "Content-Type: application/octet-stream", url],
            sample=sample,
        )
        m["seconds"] = m["wall"]
        return m

    def contenders(self, workload: str) -> dict[str, Any]:
        sdk = ["--upload", str(SDK_UPLOAD)]
        ext = ["--parallelism", str(EXTRACTOR_PARALLELISM)]
        c: dict[str, Any] = {
            "cdf-syncd": lambda r, s: self.run_syncd(r, s),
            "cognite-sdk": lambda r, s: self.run_python(self.py_sdk, "py_sdk.py", r, sdk, s),
            "extractor-utils": lambda r, s: self.run_python(self.py_ext, "py_extractor.py", r, ext, s),
        }
        if workload == "large":
            c["plain PUT (curl -T)"] = lambda r, s: self.run_curl(r, s)
        return c

    def upload_workload(self, name: str, root: Path, sizes: list[int], runs: int) -> dict[str, Any]:
        result: dict[str, Any] = {
            "files": len(sizes),
            "bytes": sum(sizes),
            "runs": {},
            "failures": {},
            "rss": {},
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "load_before": os.getloadavg(),
        }
        for i in range(runs):
            for who, run in self.contenders(name).items():
                self.emu.reset()
                sample = name == "large"
                m = run(root, sample)
                problem = f"exit {m['rc']}: {m['stderr'][-500:]}" if m["rc"] != 0 else None
                if problem is None:
                    expect = sizes if who != "plain PUT (curl -T)" else sizes
                    problem = verify(self.emu, expect)
                if problem:
                    log(f"{name} {who} run {i + 1}: FAILED: {problem}")
                    result["failures"].setdefault(who, []).append(problem)
                    continue
                rec = {k: m[k] for k in ("seconds", "wall", "cpu", "maxrss_kib")}
                result["runs"].setdefault(who, []).append(rec)
                if sample and i == 0:
                    result["rss"][who] = m["rss"]
                log(
                    f"{name} {who} run {i + 1}: {m['seconds']:.2f} s, "
                    f"{sum(sizes) / m['seconds'] / 1e6:.0f} MB/s, {len(sizes) / m['seconds']:.0f} files/s, "
                    f"cpu {m['cpu']:.2f} s, rss {m['maxrss_kib'] // 1024} MiB"
                )
        result["load_after"] = os.getloadavg()
        return result

    # --- the daemon: close -> uploaded latency ------------------------------------------

    def latency(self, count: int) -> dict[str, Any]:
        root = self.work / "latency"
        state = self.work / "state"
        shutil.rmtree(state, ignore_errors=True)
        root.mkdir(parents=True)
        cfg = self.config(root, state)
        self.emu.reset()
        log_path = self.work / "daemon.log"
        with log_path.open("wb") as dlog:
            daemon = subprocess.Popen(
                [str(self.bin), "run", "--config", str(cfg)],
                stdout=dlog, stderr=dlog, env={**os.environ, "BENCH_SECRET": "demo-secret"},
            )
        seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                now = time.time()
                for f in self.emu.files():
                    if f.get("uploaded") and f["name"] not in seen:
                        seen[f["name"]] = now
                stop.wait(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        closed: dict[str, float] = {}
        try:
            # The daemon is watching once a probe file arrives.
            (root / "probe.txt").write_bytes(b"probe")
            deadline = time.time() + 60
            while "probe.txt" not in seen:
                if time.time() > deadline or daemon.poll() is not None:
                    raise SystemExit(f"daemon never uploaded the probe; log: {log_path.read_text()[-2000:]}")
                time.sleep(0.05)
            rng = random.Random(5)
            dirs = [root / f"s{i}" for i in range(10)]
            for d in dirs:
                d.mkdir()
            time.sleep(1)  # the watcher has seen the directories (steady state)

            def write(path: Path) -> None:
                with path.open("wb") as fh:
                    fh.write(rng.randbytes(rng.randint(4 * KIB, 64 * KIB)))
                closed[path.name] = time.time()
                time.sleep(0.02)

            for i in range(count):
                write(dirs[i % 10] / f"lat{i:05}.bin")
            # A file in a directory that did not exist a moment ago (the watch on it comes late).
            for i in range(10):
                d = root / f"new{i}"
                d.mkdir()
                write(d / f"newdir{i:02}.bin")
            deadline = time.time() + 120
            while len([n for n in closed if n in seen]) < len(closed) and time.time() < deadline:
                time.sleep(0.1)
        finally:
            stop.set()
            poller.join()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            shutil.rmtree(state, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
        lat = sorted(seen[n] - closed[n] for n in closed if n in seen and n.startswith("lat"))
        newdir = sorted(seen[n] - closed[n] for n in closed if n in seen and n.startswith("newdir"))
        missing = len(closed) - len(lat) - len(newdir)
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
        res = {"files": count, "uploaded": len(lat), "missing": missing, "p50": q[49], "p99": q[98],
               "max": lat[-1] if lat else None,
               "new_dir": {"files": len(newdir), "p50": statistics.median(newdir) if newdir else None,
                           "max": newdir[-1] if newdir else None},
               "poll_interval": 0.02, "when": time.strftime("%Y-%m-%d %H:%M")}
        log(f"latency: {res}")
        return res

    # --- restart: sync --once over an already-synced tree ----------------------------------

    def restart(self, counts: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "points": []}
        root = self.work / "restart"
        state = self.work / "state"
        made = 0
        shutil.rmtree(state, ignore_errors=True)
        self.emu.reset()
        for count in counts:
            for i in range(made, count):
                p = root / f"a{i % 100:02}" / f"b{(i // 100) % 100:02}" / f"t{i:07}.txt"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x" * 100)
                t = time.time() - OLD
                os.utime(p, (t, t))
            made = count
            cfg = self.config(root, state)
            env = {"BENCH_SECRET": "demo-secret"}
            first = measure([str(self.bin), "sync", "--once", "--config", str(cfg)], env)
            if first["rc"] != 0 or len(self.emu.files()) != count:
                raise SystemExit(f"restart: first sync of {count} files failed: {first['stderr']}")
            created = self.emu.counters().get("requests", {}).get("POST files", {})
            again = measure([str(self.bin), "sync", "--once", "--config", str(cfg)], env)
            after = self.emu.counters().get("requests", {}).get("POST files", {})
            if again["rc"] != 0 or after != created or len(self.emu.files()) != count:
                raise SystemExit(f"restart: the second sync of {count} files uploaded again or failed")
            find = measure(["sh", "-c", f"find {root} -type f | wc -l"])
            store = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
            point = {
                "files": count,
                "first_sync_s": first["wall"],
                "restart_s": again["wall"],
                "restart_rss_kib": again["maxrss_kib"],
                "restart_cpu": again["cpu"],
                "find_s": find["wall"],
                "store_bytes": store,
                "store_bytes_per_file": store / count,
            }
            log(f"restart: {point}")
            out["points"].append(point)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        return out

    # --- memory and restart vs tracked files (prefilled job store) -------------------------

    def tracked(self, counts: list[int]) -> dict[str, Any]:
        """Empty files on disk, a job store prefilled with a synced record for each
        (examples/bench_prefill.rs), then `sync --once`: the scan stats every file, finds it
        synced, uploads nothing; its peak RSS and time are what the tracked files cost."""
        prefill = self.bin.parent / "examples" / "bench_prefill"
        out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "points": []}
        root = self.work / "tracked"
        state = self.work / "state"
        made = 0
        # Written before the daemon last ran: older than stable_for, as after a restart
        # (young files would wait in the stability gate and be measured as settling).
        old = time.time() - 600
        try:
            for count in counts:
                for i in range(made, count):
                    d = root / f"a{i % 100:02}" / f"b{(i // 100) % 100:02}"
                    if i < 10_000:
                        d.mkdir(parents=True, exist_ok=True)
                    (d / f"t{i:07}").touch()
                    os.utime(d / f"t{i:07}", (old, old))
                made = count
                shutil.rmtree(state, ignore_errors=True)
                fill = measure([str(prefill), str(state), "bench", str(root)])
                if fill["rc"] != 0:
                    raise SystemExit(f"tracked: prefill failed: {fill['stderr']}")
                cfg = self.config(root, state)
                self.emu.reset()
                m = measure([str(self.bin), "sync", "--once", "--config", str(cfg)], {"BENCH_SECRET": "demo-secret"})
                uploaded = len(self.emu.files())
                if m["rc"] != 0 or uploaded:
                    raise SystemExit(f"tracked: sync --once over {count} synced files uploaded {uploaded} or failed: {m['stderr']}")
                find = measure(["sh", "-c", f"find {root} -type f | wc -l"])
                store = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
                point = {"files": count, "prefill_s": fill["wall"], "idle_s": m["wall"], "rss_kib": m["maxrss_kib"],
                         "cpu": m["cpu"], "find_s": find["wall"], "store_bytes": store}
                log(f"tracked: {point}")
                out["points"].append(point)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
        return out

    # --- [upload] max_rate --------------------------------------------------------------------

    def ratelimit(self, rate_mib: int, seconds: int) -> dict[str, Any]:
        root = self.work / "rate"
        size = rate_mib * MIB * seconds
        gen_large(root, size)
        state = self.work / "state"
        shutil.rmtree(state, ignore_errors=True)
        cfg = self.config(root, state, extra=f'[upload]\nmax_rate = "{rate_mib} MiB/s"\n')
        self.emu.reset()
        m = measure([str(self.bin), "sync", "--once", "--config", str(cfg)], {"BENCH_SECRET": "demo-secret"})
        problem = verify(self.emu, [size]) if m["rc"] == 0 else m["stderr"]
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        if problem:
            raise SystemExit(f"ratelimit: {problem}")
        achieved = size / m["wall"] / MIB
        res = {"max_rate_mib": rate_mib, "bytes": size, "seconds": m["wall"], "achieved_mib": achieved,
               "error_pct": (achieved / rate_mib - 1) * 100, "when": time.strftime("%Y-%m-%d %H:%M")}
        log(f"ratelimit: {res}")
        return res

    # --- settings sweep for the Python contenders ----------------------------------------------

    def tune(self, small: int, large: int) -> dict[str, Any]:
        out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "small_files": small, "large_bytes": large, "rows": []}
        for kind in ("small", "large"):
            root = self.work / f"tune-{kind}"
            sizes = gen_small(root, small) if kind == "small" else gen_large(root, large)
            for who, py, script, flag in (
                ("cognite-sdk", self.py_sdk, "py_sdk.py", "--upload"),
                ("extractor-utils", self.py_ext, "py_extractor.py", "--parallelism"),
            ):
                for n in (5, 10, 20, 40):
                    self.emu.reset()
                    m = self.run_python(py, script, root, [flag, str(n)], False)
                    problem = verify(self.emu, sizes) if m["rc"] == 0 else m["stderr"][-300:]
                    row = {"workload": kind, "contender": who, "setting": f"{flag} {n}",
                           "seconds": None if problem else m["seconds"], "problem": problem}
                    log(f"tune: {row}")
                    out["rows"].append(row)
            shutil.rmtree(root, ignore_errors=True)
        return out


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // 1024
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "mem_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit + (" (src modified)" if dirty else ""),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--workloads", default="large,small,mixed,latency,restart,tracked,ratelimit")
    ap.add_argument("--command", default="", help="the command line, for the report")
    ap.add_argument("--large-mib", type=int, help="override the large file's size")
    ap.add_argument("--small-files", type=int, help="override the number of small files")
    args = ap.parse_args()

    runs = args.runs or (3 if args.quick else 5)
    large = args.large_mib * MIB if args.large_mib else (1 if args.quick else 4) * GIB
    small = args.small_files or (5000 if args.quick else 20000)
    work = Path(args.work)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("workloads", {})
    results["machine"] = machine()
    results["settings"] = {"sdk_upload": SDK_UPLOAD, "extractor_parallelism": EXTRACTOR_PARALLELISM}

    suite = Suite(args)
    try:
        for name in args.workloads.split(","):
            log(f"workload {name}")
            root = work / name
            if name == "large":
                sizes = gen_large(root, large)
            elif name == "small":
                sizes = gen_small(root, small)
            elif name == "mixed":
                sizes = gen_mixed(root)
            if name in ("large", "small", "mixed"):
                res = suite.upload_workload(name, root, sizes, runs)
                shutil.rmtree(root, ignore_errors=True)
            elif name == "latency":
                res = suite.latency(200 if args.quick else 1000)
            elif name == "restart":
                res = suite.restart([10_000] if args.quick else [10_000, 100_000])
            elif name == "tracked":
                res = suite.tracked([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
            elif name == "ratelimit":
                res = suite.ratelimit(16, 10 if args.quick else 30)
            elif name == "tune":
                res = suite.tune(2000, 1 * GIB)
            else:
                raise SystemExit(f"unknown workload {name!r}")
            res["quick"] = args.quick
            res["command"] = args.command
            results["workloads"][name] = res
            results_path.write_text(json.dumps(results, indent=1))
    finally:
        suite.emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
