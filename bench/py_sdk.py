"""Benchmark contender: the official Python SDK, cognite-sdk 8.22.0 (bench/.venv-sdk).

    py_sdk.py BASE_URL PATH [--upload N] [--pool N]

Uploads PATH with `client.files.upload(PATH, recursive=True)` (a directory) or
`client.files.upload(PATH)` (one file), pointed at the emulator the way tests/sdk does
(OAuth client credentials against the emulator's token endpoint). Prints one JSON line:
{"seconds": ..., "files": ...}, where seconds is timed inside the process, from creating
the client to the last upload returning (interpreter start and imports excluded, which
favours this contender over cdf-syncd, timed as a whole process).

Settings ("best", see BENCHMARKS.md): `global_config.concurrency_settings.files.upload`
(the semaphore every files request takes: init, part PUTs, complete; default 5) and
`max_connection_pool_size` (default 20) from the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cognite.client import global_config
from py_client import emulator_client


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("path", type=Path)
    ap.add_argument("--upload", type=int, default=5, help="files.upload concurrency (SDK default 5)")
    ap.add_argument("--open-files", type=int, default=15, help="files.open_files (SDK default 15)")
    ap.add_argument("--pool", type=int, default=20, help="max_connection_pool_size (SDK default 20)")
    args = ap.parse_args()

    global_config.disable_pypi_version_check = True
    global_config.max_connection_pool_size = args.pool
    files = global_config.concurrency_settings.files
    files.upload = args.upload
    files.open_files = max(args.open_files, args.upload)

    t0 = time.monotonic()
    client = emulator_client(args.base_url)
    if args.path.is_dir():
        res = client.files.upload(args.path, recursive=True)
        n = len(res)
    else:
        client.files.upload(args.path)
        n = 1
    print(json.dumps({"seconds": time.monotonic() - t0, "files": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
