"""The alternative to the usage log's sidecar indexes, measured on the same records: SQLite
as a derived index beside the JSON Lines log (the log stays the source of truth; SQLite
holds, per record, the columns the filters use and where its line is), so the choice in
ARCHITECTURE.md ("Why our own sidecar rather than SQLite") rests on figures.

Run by `bench/usage.sh --sqlite N` after bench/usage_bench.py has served the same home (whose
first start wrote the sidecar indexes it compares with). Python's own sqlite3, WAL, the
synchronous level a derived index can afford (NORMAL). Prints, as Markdown rows: bytes on
disk per record (SQLite's file vs the sidecar `.idx` files), bytes written per record while
loading (from /proc/self/io, the WAL and its checkpoints included) beside the log's own, and
p50/p95 of the same look-ups bench/usage_bench.py makes of Routerly, each ending with the
matching lines read from the log and parsed, as Routerly answers them. Not a test.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPEAT = 21
PAGE = 50
BATCH = 10_000


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def millis(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def segments(data: Path) -> list[Path]:
    """The log's plain segments, oldest first (rotated ones by name, then the active file)."""
    rotated = sorted(data.glob("usage-*.jsonl"))
    return rotated + [data / "usage.jsonl"]


def load(db: sqlite3.Connection, files: list[Path]) -> int:
    db.executescript(
        """
        CREATE TABLE calls (
            ts INTEGER NOT NULL, project TEXT NOT NULL, model TEXT, token TEXT NOT NULL,
            outcome TEXT NOT NULL, trace TEXT NOT NULL,
            segment INTEGER NOT NULL, offset INTEGER NOT NULL, len INTEGER NOT NULL);
        CREATE INDEX calls_ts ON calls (ts);
        CREATE INDEX calls_project ON calls (project, ts);
        CREATE INDEX calls_model ON calls (model, ts);
        CREATE INDEX calls_token ON calls (token, outcome, ts);
        CREATE INDEX calls_outcome ON calls (outcome, ts);
        CREATE INDEX calls_trace ON calls (trace);
        """
    )
    records = 0
    rows = []
    for number, path in enumerate(files):
        offset = 0
        with path.open("rb") as log:
            for line in log:
                record = json.loads(line)
                rows.append(
                    (
                        millis(record["timestamp"]),
                        record["project_id"],
                        record["model_id"],
                        record["token_id"],
                        record["outcome"],
                        record["trace_id"],
                        number,
                        offset,
                        len(line),
                    )
                )
                offset += len(line)
                if len(rows) == BATCH:
                    records += insert(db, rows)
        records += insert(db, rows)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return records


def insert(db: sqlite3.Connection, rows: list) -> int:
    with db:
        db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    count = len(rows)
    rows.clear()
    return count


def lines(files: list[Path], hits: list[tuple[int, int, int]]) -> list[dict]:
    """The records the index points at, read from the log and parsed."""
    found = []
    for segment, offset, length in hits:
        with files[segment].open("rb") as log:
            log.seek(offset)
            found.append(json.loads(log.read(length)))
    return found


def timed(run) -> tuple[float, float, object]:
    samples = []
    answer = None
    for _ in range(REPEAT):
        began = time.perf_counter()
        answer = run()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], answer


def main() -> None:
    home, meta = Path(sys.argv[1]), json.loads(sys.argv[2])
    data = home / "data"
    files = segments(data)
    log_bytes = sum(path.stat().st_size for path in files)
    indexes = list(data.glob("usage-*.jsonl.idx"))
    indexed_records = sum(
        block["records"] for index in indexes for block in json.loads(index.read_text())["blocks"]
    )
    index_bytes = sum(index.stat().st_size for index in indexes)

    folder = Path(tempfile.mkdtemp(prefix="routerly-sqlite-bench-", dir=os.environ.get("BENCH_DIR", "/tmp")))
    try:
        path = folder / "usage.sqlite"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN")
        db.execute("COMMIT")
        before = written_bytes()
        began = time.perf_counter()
        records = load(db, files)
        seconds = time.perf_counter() - began
        written = written_bytes() - before
        disk = sum(p.stat().st_size for p in folder.iterdir())

        rows: list[tuple[str, str]] = [
            ("records", f"{records:,} ({log_bytes / records:,.0f} bytes of log each)"),
            (
                "on disk per record: SQLite vs the sidecar",
                f"{disk / records:,.0f} B (table and 6 indexes, {disk / 1e6:,.0f} MB) vs "
                f"{index_bytes / max(indexed_records, 1):,.1f} B ({len(indexes)} rotated segments' `.idx`, "
                f"{index_bytes / 1e6:,.1f} MB for {indexed_records:,} records; the active segment's index is in the checkpoint)",
            ),
            (
                "written per record while loading",
                f"{written / records:,.0f} B ({written / log_bytes:.1f}× the log's own bytes; the sidecar writes none per call)",
            ),
            ("load time, batches of %d" % BATCH, f"{seconds:.1f} s ({records / seconds:,.0f} records/s, one Python thread)"),
        ]

        def page(where: str = "", args: tuple = (), offset: int = 0):
            hits = db.execute(
                f"SELECT segment, offset, len FROM calls {where} ORDER BY ts DESC LIMIT ? OFFSET ?",
                (*args, PAGE, offset),
            ).fetchall()
            return lines(files, hits)

        day_from, day_to = millis(meta["day_from"]), millis(meta["day_to"])
        questions = [
            ("summary (a scan: SQLite keeps no rollups)", lambda: db.execute(
                "SELECT count(*), sum(ts) FROM calls").fetchone()),
            ("page of 50 calls", lambda: page()),
            ("page 20 (offset 1000)", lambda: page(offset=1000)),
            ("filtered page: one token's errors", lambda: page(
                "WHERE token = ? AND outcome = 'error'", (meta["token"],))),
            ("filtered page: one model, one day", lambda: page(
                "WHERE model = ? AND ts >= ? AND ts < ?", (meta["model"], day_from, day_to))),
            ("trace look-up (newest)", lambda: page("WHERE trace = ?", (meta["newest_trace"],))),
            ("trace look-up (mid-history)", lambda: page("WHERE trace = ?", (meta["middle_trace"],))),
        ]
        for name, run in questions:
            p50, p95, answer = timed(run)
            if name.startswith("trace"):
                assert len(answer) == 1 and answer[0]["trace_id"] in (meta["newest_trace"], meta["middle_trace"]), name
            rows.append((f"SQLite: {name}", f"p50 {p50:.2f} ms, p95 {p95:.2f} ms"))
        db.close()
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    print(f"\n| {records:,} records, SQLite as a derived index | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
