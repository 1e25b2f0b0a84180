#!/usr/bin/env python3
"""Append throughput of the Python `eventsourcing` 9.5.6 SQLite recorder.

Drives SQLiteApplicationRecorder.insert_events() directly (no Application
layer): C threads, each appending one event per call to its own aggregate.

    python3 eventsourcing_sqlite.py --dir DIR --appends N --concurrency 1,16 [--json]

With --json, stdout carries one JSON object per concurrency level and the
human-readable lines go to stderr.
"""

import argparse
import json
import math
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
from importlib.metadata import version

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

ES_VERSION = "9.5.6"
TOPIC = "bench:Ticked"
STATE_BYTES = 100
WARMUP_PER_THREAD = 2
LOCK_TIMEOUT_S = 120  # sqlite3 busy timeout: no append may fail on "database is locked"
POOL_TIMEOUT_S = 120.0  # wait for the pool's writer lock instead of raising


class FullSyncPool(SQLiteConnectionPool):
    # eventsourcing turns on WAL but never sets `synchronous`, so set it on
    # every connection the recorder's pool opens rather than rely on the
    # SQLite build default.
    def _create_connection(self):
        conn = super()._create_connection()
        conn._sqlite_conn.execute("PRAGMA synchronous=FULL")
        return conn


def make_datastore(db_path):
    datastore = SQLiteDatastore(
        db_path, lock_timeout=LOCK_TIMEOUT_S, pool_timeout=POOL_TIMEOUT_S
    )
    # No connection has been opened yet, so swapping the pool is safe; the
    # arguments mirror what SQLiteDatastore passes to its own pool.
    datastore.pool = FullSyncPool(
        db_name=db_path, lock_timeout=LOCK_TIMEOUT_S, pool_timeout=POOL_TIMEOUT_S
    )
    return datastore


def state(n):
    # {"tag":"bench","n":<n>,"pad":"xxx..."} padded to exactly STATE_BYTES bytes.
    head = '{"tag":"bench","n":%d,"pad":"' % n
    body = head + "x" * (STATE_BYTES - len(head) - 2) + '"}'
    data = body.encode()
    assert len(data) == STATE_BYTES
    return data


def fs_type(path):
    path = os.path.realpath(path)
    best, best_type = "", None
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mnt, typ = line.split()[:3]
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mnt)
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, best_type = mnt, typ
    return best_type, best


def pool_pragmas(datastore):
    # Inspect every connection the recorder's own pool holds (all idle now).
    conns = list(datastore.pool._pool)
    if not conns:
        raise RuntimeError("recorder pool holds no connections to inspect")
    modes, syncs = set(), set()
    for conn in conns:
        c = conn._sqlite_conn
        modes.add(c.execute("PRAGMA journal_mode").fetchone()[0].lower())
        syncs.add(c.execute("PRAGMA synchronous").fetchone()[0])
    if len(modes) != 1 or len(syncs) != 1:
        raise RuntimeError(f"connections disagree: journal_mode={modes} synchronous={syncs}")
    return modes.pop(), syncs.pop(), len(conns)


def percentile(sorted_values, p):
    # Nearest-rank percentile.
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def run_level(directory, appends, concurrency):
    db_path = os.path.join(directory, f"eventsourcing-bench-c{concurrency}.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)

    datastore = make_datastore(db_path)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()

    counts = [appends // concurrency + (i < appends % concurrency) for i in range(concurrency)]
    latencies = [[] for _ in range(concurrency)]
    errors = []
    started = []
    barrier = threading.Barrier(concurrency, action=lambda: started.append(time.perf_counter()))

    def worker(i):
        try:
            originator_id = uuid.uuid4()
            version_no = 0

            def append():
                nonlocal version_no
                version_no += 1
                recorder.insert_events([
                    StoredEvent(
                        originator_id=originator_id,
                        originator_version=version_no,
                        topic=TOPIC,
                        state=state(version_no),
                    )
                ])

            for _ in range(WARMUP_PER_THREAD):
                append()
            barrier.wait()
            lat = latencies[i]
            for _ in range(counts[i]):
                t = time.perf_counter()
                append()
                lat.append(time.perf_counter() - t)
        except BaseException as e:  # noqa: BLE001 - any failure aborts the run
            errors.append(f"thread {i}: {type(e).__name__}: {e}")
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = time.perf_counter()
    if errors:
        datastore.close()
        raise SystemExit("append failed: " + "; ".join(errors))

    journal_mode, synchronous, n_conns = pool_pragmas(datastore)
    datastore.close()

    expected = appends + concurrency * WARMUP_PER_THREAD
    with sqlite3.connect(db_path) as check:
        rows = check.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
    if rows != expected:
        raise SystemExit(f"row count {rows} != expected {expected}")

    seconds = finished - started[0]
    lat_ms = sorted(x * 1000 for lane in latencies for x in lane)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    return {
        "impl": f"eventsourcing-{ES_VERSION}",
        "concurrency": concurrency,
        "appends": appends,
        "seconds": round(seconds, 6),
        "appends_per_s": round(appends / seconds, 1),
        "p50_ms": round(percentile(lat_ms, 50), 3),
        "p99_ms": round(percentile(lat_ms, 99), 3),
        "journal_mode": journal_mode,
        "synchronous": synchronous,
    }, rows, n_conns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="directory on a real disk (not tmpfs)")
    ap.add_argument("--appends", type=int, default=2000, help="timed appends per level")
    ap.add_argument("--concurrency", default="1,16", help="comma-separated thread counts")
    ap.add_argument("--json", action="store_true", help="JSON lines on stdout")
    args = ap.parse_args()

    installed = version("eventsourcing")
    if installed != ES_VERSION:
        sys.exit(f"eventsourcing {ES_VERSION} required, found {installed}")
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.appends < 1 or not levels or min(levels) < 1:
        sys.exit("--appends and every --concurrency level must be >= 1")

    os.makedirs(args.dir, exist_ok=True)
    typ, mnt = fs_type(args.dir)
    if typ in ("tmpfs", "ramfs"):
        sys.exit(f"{args.dir} is on {typ} (mounted at {mnt}); use a directory on a real disk")

    out = sys.stderr if args.json else sys.stdout
    print(f"dir {os.path.realpath(args.dir)}: filesystem {typ} (mount {mnt}), "
          f"sqlite {sqlite3.sqlite_version}", file=out)
    for c in levels:
        r, rows, n_conns = run_level(args.dir, args.appends, c)
        print(f"eventsourcing {ES_VERSION} sqlite: concurrency {c}: "
              f"{r['appends_per_s']:.0f} appends/s, p50 {r['p50_ms']:.1f} ms, "
              f"p99 {r['p99_ms']:.1f} ms (journal_mode={r['journal_mode']}, "
              f"synchronous={r['synchronous']}, pooled connections={n_conns}, "
              f"rows={rows} = {args.appends} + {c * WARMUP_PER_THREAD} warm-up)", file=out)
        if args.json:
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
