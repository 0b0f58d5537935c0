"""Benchmark contender: cognite-extractor-utils 7.13.2's IOFileUploadQueue, the engine under
Cognite's own file extractor (bench/.venv-extractor; it pins cognite-sdk<8, so 7.94.2).

    py_extractor.py BASE_URL PATH [--parallelism N]

Walks PATH (a directory, recursively, or one file) and adds every file with
`add_io_to_upload_queue(FileMetadata(external_id=<relative path>, name, directory), open)`,
as the file extractor does, then waits for the queue. Prints one JSON line:
{"seconds": ..., "files": ...}, timed inside the process from creating the client to the
queue being drained (interpreter start and imports excluded, which favours this contender).

Settings ("best", see BENCHMARKS.md): `max_parallelism` (the queue's thread pool; default
the client's max_workers, 5) from the command line; the SDK's `max_workers` and
`max_connection_pool_size` are set to match.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# cognite-sdk 7's OAuth library refuses a token URL over plain HTTP (the emulator on
# loopback) unless told otherwise.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

from cognite.client import global_config  # noqa: E402
from cognite.client.data_classes import FileMetadata  # noqa: E402
from cognite.extractorutils.uploader import IOFileUploadQueue  # noqa: E402
from py_client import emulator_client  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("path", type=Path)
    ap.add_argument("--parallelism", type=int, default=5, help="max_parallelism (default: max_workers, 5)")
    args = ap.parse_args()

    global_config.disable_pypi_version_check = True
    global_config.max_workers = args.parallelism
    global_config.max_connection_pool_size = max(50, 2 * args.parallelism)

    t0 = time.monotonic()
    client = emulator_client(args.base_url)
    root = args.path
    if root.is_dir():
        paths = [Path(d) / f for d, _, names in os.walk(root) for f in names]
    else:
        paths = [root]
        root = root.parent
    n = 0
    with IOFileUploadQueue(
        client, max_queue_size=10 * args.parallelism, max_parallelism=args.parallelism
    ) as queue:
        for p in paths:
            rel = p.relative_to(root)
            directory = "/bench/" + str(rel.parent) if str(rel.parent) != "." else "/bench"
            meta = FileMetadata(external_id=str(rel), name=p.name, directory=directory)
            queue.add_io_to_upload_queue(meta, lambda p=p: open(p, "rb"))
            n += 1
        queue.upload()
    if queue.errors:
        print(f"{len(queue.errors)} uploads failed: {queue.errors[0]!r}", file=sys.stderr)
        return 1
    print(json.dumps({"seconds": time.monotonic() - t0, "files": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
