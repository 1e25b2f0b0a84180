#!/usr/bin/env python3
"""Feed latency across processes, on SQLite and PostgreSQL, through the `sekiban` command.

For each store one follower process (`sekiban tail --from now --json --tenant T`) runs while N
short-lived writer processes (`sekiban append ...`, one process per event, one after the other,
one every --interval-ms) append to the same store. Each line the follower prints is timestamped
on arrival; the delay of an event is that arrival time minus the event's `recorded_at`. Then,
with no writes, the follower's CPU use over --idle-secs (utime + stime from /proc/PID/stat).

Prints one markdown table on stdout (progress on stderr), with the commit and the command line.

Usage: python3 scripts/bench-feed-latency.py [--postgres URL|none] [--events 100]
           [--interval-ms 50] [--idle-secs 10] [--dir /var/tmp]

Builds the CLI once (`cargo build --release -p sekiban-cli`). Writes a SQLite file into a fresh
temporary directory under --dir (a real disk; default /var/tmp) and a PostgreSQL schema
bench_feed_<random>, and removes both at the end. Sends traffic only to the given PostgreSQL URL
(by default $SEKIBAN_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test). Every process it
starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test"


def log(msg: str) -> None:
    print(f"bench-feed-latency: {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    raise SystemExit(f"bench-feed-latency: error: {msg}")


def build_cli() -> Path:
    log("building the CLI: cargo build --release -p sekiban-cli")
    subprocess.run(["cargo", "build", "--release", "-p", "sekiban-cli"], cwd=ROOT, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    target = Path(json.loads(meta.stdout)["target_directory"])
    binary = target / "release" / "sekiban"
    if not binary.is_file():
        fail(f"{binary} was not built")
    return binary


def parse_rfc3339(s: str) -> float:
    """`2025-05-01T12:00:00.000000Z` (as cli/src/output.rs writes it) as Unix seconds."""
    t = dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


class Follower:
    """A `sekiban tail` process whose stdout lines are read in a thread and timestamped."""

    def __init__(self, cli: Path, url: str, tenant: str):
        cmd = [str(cli), "--store", url, "tail", "--from", "now", "--json", "--tenant", tenant]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.stderr: list[str] = []
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.put((time.time(), raw.decode("utf-8", "replace")))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            fail(
                f"the follower (pid {self.pid}) exited with {self.proc.returncode}: "
                + " | ".join(self.stderr[-5:])
            )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGINT, then SIGKILL after `timeout` seconds; by PID."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"follower pid {self.proc.pid} ignored SIGINT for {timeout}s; SIGKILL")
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._out.join(timeout=2)
        self._err.join(timeout=2)


def append(cli: Path, url: str, stream: str, n: int) -> None:
    r = subprocess.run(
        [str(cli), "--store", url, "append", stream, "--expected", "any", "--type", "Deposited",
         "--data", json.dumps({"n": n}, separators=(",", ":")), "--json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    if r.returncode != 0:
        fail(f"append to {stream} exited with {r.returncode}: {r.stderr.strip()}")


def wait_for_streams(f: Follower, wanted: set[str], arrivals: dict[str, tuple[float, float]],
                     deadline: float) -> None:
    """Reads follower lines into `arrivals` (stream -> (arrival, recorded_at)) until every stream
    of `wanted` arrived or `deadline` (time.monotonic()) passed."""
    while not wanted <= arrivals.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            at, line = f.lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            f.check_alive()
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            log(f"not a JSON line from the follower: {line.strip()[:200]}")
            continue
        if item.get("kind") == "event" and item["stream"] not in arrivals:
            arrivals[item["stream"]] = (at, parse_rfc3339(item["recorded_at"]))


def measure(cli: Path, name: str, url: str, args: argparse.Namespace) -> dict:
    tenant = "feed" + uuid.uuid4().hex[:12]
    log(f"{name}: init {url}")
    r = subprocess.run([str(cli), "--store", url, "init"], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{name}: `sekiban --store {url} init` exited with {r.returncode}: {r.stderr.strip()}")
    f = Follower(cli, url, tenant)
    try:
        # Following: a warm-up event appended after the follower started must come through.
        arrivals: dict[str, tuple[float, float]] = {}
        for attempt in range(1, 11):
            stream = f"{tenant}/warm/w-{attempt}"
            append(cli, url, stream, -attempt)
            wait_for_streams(f, {stream}, arrivals, time.monotonic() + 5.0)
            if stream in arrivals:
                log(f"{name}: the follower (pid {f.pid}) is following (warm-up {attempt})")
                break
            f.check_alive()
        else:
            fail(f"{name}: the follower printed no warm-up event in 10 attempts")

        streams = [f"{tenant}/acct/a-{k}" for k in range(1, args.events + 1)]
        interval = args.interval_ms / 1000.0
        start = time.monotonic()
        for k, stream in enumerate(streams, start=1):
            due = start + (k - 1) * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            append(cli, url, stream, k)
        writers_secs = time.monotonic() - start
        wait_for_streams(f, set(streams), arrivals, time.monotonic() + 15.0)
        delays = sorted((arrivals[s][0] - arrivals[s][1]) * 1000.0 for s in streams if s in arrivals)
        missing = len(streams) - len(delays)
        if missing:
            log(f"{name}: {missing} of {len(streams)} events did not reach the follower within 15 s")

        # Idle CPU of the follower: no writes at all.
        time.sleep(1.0)
        f.check_alive()
        clk = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), cpu_ticks(f.pid)
        time.sleep(args.idle_secs)
        t1, c1 = time.monotonic(), cpu_ticks(f.pid)
        idle_cpu = (c1 - c0) / clk / (t1 - t0) * 100.0
        log(f"{name}: {len(delays)} events in {writers_secs:.1f} s of writers; idle CPU {idle_cpu:.2f} %")
        return {
            "store": name,
            "events": len(delays),
            "missing": missing,
            "p50": percentile(delays, 50),
            "p90": percentile(delays, 90),
            "p99": percentile(delays, 99),
            "max": delays[-1] if delays else float("nan"),
            "over50": sum(d > 50 for d in delays),
            "over100": sum(d > 100 for d in delays),
            "idle_cpu": idle_cpu,
            "writer_pace_ms": writers_secs / len(streams) * 1000.0,
        }
    finally:
        f.stop()


def with_param(url: str, key: str, value: str) -> str:
    return url + ("&" if "?" in url else "?") + f"{key}={value}"


def psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-t", "-c", sql],
        capture_output=True, text=True, timeout=30,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--postgres", default=None,
                   help='PostgreSQL URL, or "none" to skip (default: $SEKIBAN_POSTGRES_URL or '
                        + DEFAULT_PG + ")")
    p.add_argument("--events", type=int, default=100)
    p.add_argument("--interval-ms", type=float, default=50.0)
    p.add_argument("--idle-secs", type=float, default=10.0)
    p.add_argument("--dir", default="/var/tmp", help="where the temporary directory goes (a real disk)")
    args = p.parse_args()
    if args.events < 1 or args.interval_ms < 0 or args.idle_secs <= 0:
        fail("--events must be at least 1, --interval-ms not negative, --idle-secs positive")

    pg = args.postgres or os.environ.get("SEKIBAN_POSTGRES_URL") or DEFAULT_PG
    if pg == "none":
        log("PostgreSQL skipped (--postgres none)")
        pg = None
    elif shutil.which("psql") is None:
        fail("psql is not on the PATH (needed to drop the benchmark schema); or pass --postgres none")
    else:
        r = psql(pg, "SELECT 1")
        if r.returncode != 0:
            fail(f"PostgreSQL at {pg} does not answer: {r.stderr.strip()} (pass --postgres none to skip it)")

    # The commit the CLI is built from (taken before the build).
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    cli = build_cli()

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="sekiban-feed-", dir=args.dir))
    schema = "bench_feed_" + uuid.uuid4().hex[:12]
    schema_created = False
    try:
        rows.append(measure(cli, "sqlite", f"sqlite://{tmp / 'feed.db'}", args))
        if pg is not None:
            schema_created = True
            rows.append(measure(cli, "postgres", with_param(pg, "schema", schema), args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if schema_created:
            r = psql(pg, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            if r.returncode != 0:
                log(f"could not drop schema {schema}: {r.stderr.strip()}")

    print(f"Feed latency across processes: commit `{commit}`"
          + (" (with uncommitted changes)" if dirty else "")
          + f", {os.cpu_count()} cores, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print()
    print("`" + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]) + "`")
    print()
    print("| store | events | p50 ms | p90 ms | p99 ms | max ms | >50 ms | >100 ms | idle CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        events = f"{r['events']}" + (f" ({r['missing']} missing)" if r["missing"] else "")
        print(f"| {r['store']} | {events} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} "
              f"| {r['max']:.1f} | {r['over50']} | {r['over100']} | {r['idle_cpu']:.2f} |")
    print()
    print(f"One follower `sekiban tail --from now --json --tenant T`; {args.events} writer processes "
          f"`sekiban append` one after the other, one every {args.interval_ms:g} ms; delay = arrival "
          f"of the follower's line − the event's `recorded_at`; idle CPU over {args.idle_secs:g} s "
          "without writes, % of one core "
          f"(resolution: one clock tick = {100.0 / os.sysconf('SC_CLK_TCK') / args.idle_secs:.2f} %).")
    print()
    print("Writers' actual pace (a writer starts when the previous one exited, at the earliest at its "
          "slot): " + ", ".join(f"{r['store']} one every {r['writer_pace_ms']:.0f} ms" for r in rows) + ".")


if __name__ == "__main__":
    main()
