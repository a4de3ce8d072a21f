"""The alternative to the usage log's sidecar indexes, measured on the same records: SQLite
as a derived index beside the JSON Lines log (the log stays the source of truth; SQLite
holds, per record, the fields the reports and filters read and where its line is), so the
choice in ARCHITECTURE.md ("Why our own sidecar rather than SQLite") rests on figures.

Run by `bench/usage.sh --sqlite N` after bench/usage_bench.py has served the same home (whose
first start wrote the sidecar indexes this compares with, and which left its own p50s in
HOME/routerly-figures.json). Python's own sqlite3, WAL, the synchronous level a derived index
can afford (NORMAL), a 64 MiB page cache. The records are read from the log the generator
wrote (the same stream bench/usage.sh measures Routerly on) and indexed in PHASES, in log
order: a rebuild from the log in large transactions, then in step with the log's writer
(one write and fdatasync for what gathered, at most 100 a second: 100 calls a transaction at
10,000 calls a second, one a transaction below 100 a second).

Prints, as Markdown rows: bytes on disk per record (SQLite's table and indexes vs the
sidecar's `.idx` files), bytes written per record in each phase (what SQLite handed to
write(2), from /proc/self/io's wchar, and what reached storage, write_bytes, where the
folder is on a disk), and each question's p50/p95 beside Routerly's p50 from the same run
(each page and look-up checked to be the very calls Routerly answered).
Pages and look-ups end by reading the matching lines from the log and parsing them, as
Routerly answers them; the summary and the breakdown are SQL aggregates over the table
(SQLite keeps no rollups). Not a test.
"""

from __future__ import annotations

import itertools
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
# (name, records, records per transaction); the first takes what the others leave.
PHASES = [
    ("rebuilding from the log", 0, 10_000),
    ("in step with the log's writer at 10,000 calls/s (it writes at most 100 times a second)", 100_000, 100),
    ("**in step with the log's writer below 100 calls/s** (a write a call)", 20_000, 1),
]
CACHE_KIB = 64 * 1024

SCHEMA = """
CREATE TABLE calls (
    ts INTEGER NOT NULL, project TEXT NOT NULL, model TEXT, token TEXT NOT NULL,
    user TEXT, tags TEXT NOT NULL, outcome TEXT NOT NULL, status INTEGER NOT NULL,
    trace TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, latency_ms REAL NOT NULL, ttft_ms REAL,
    segment INTEGER NOT NULL, offset INTEGER NOT NULL, len INTEGER NOT NULL);
CREATE INDEX calls_ts ON calls (ts);
CREATE INDEX calls_project ON calls (project, ts);
CREATE INDEX calls_model ON calls (model, ts);
CREATE INDEX calls_token ON calls (token, outcome, ts);
CREATE INDEX calls_outcome ON calls (outcome, ts);
CREATE INDEX calls_trace ON calls (trace);
"""
INDEXES = 6


def io_counters() -> tuple[int, int]:
    """(wchar, write_bytes) of this process: bytes handed to write calls, bytes sent to storage."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


def millis(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def segments(data: Path) -> list[Path]:
    """The log's plain segments, oldest first (rotated ones by name, then the active file)."""
    rotated = sorted(data.glob("usage-*.jsonl"))
    return rotated + [data / "usage.jsonl"]


def rows_of(files: list[Path]):
    """One row per record of the log, in log order."""
    for number, path in enumerate(files):
        offset = 0
        with path.open("rb") as log:
            for line in log:
                record = json.loads(line)
                yield (
                    millis(record["timestamp"]),
                    record["project_id"],
                    record["model_id"],
                    record["token_id"],
                    record.get("user"),
                    ";".join(record.get("tags") or []),
                    record["outcome"],
                    record["status"],
                    record["trace_id"],
                    record["input_tokens"],
                    record["output_tokens"],
                    record.get("cached_input_tokens", 0),
                    record.get("cache_write_tokens", 0),
                    record["cost_usd"],
                    record["latency_ms"],
                    record.get("ttft_ms"),
                    number,
                    offset,
                    len(line),
                )
                offset += len(line)


INSERT = "INSERT INTO calls VALUES (%s)" % ", ".join("?" * 19)


class Phase:
    """Records indexed in one phase, the time it took and the bytes it wrote."""

    def __init__(self, name: str, per_transaction: int) -> None:
        self.name = name
        self.per_transaction = per_transaction
        self.records = 0
        self.seconds = 0.0
        self.wchar = 0
        self.storage = 0

    def __enter__(self) -> Phase:
        self.began = time.perf_counter()
        self.before = io_counters()
        return self

    def __exit__(self, *_) -> None:
        self.seconds = time.perf_counter() - self.began
        after = io_counters()
        self.wchar = after[0] - self.before[0]
        self.storage = after[1] - self.before[1]


def load(db: sqlite3.Connection, files: list[Path], total: int) -> list[Phase]:
    """Indexes every record, phase by phase (see the module's doc); the last phase ends with
    a checkpoint, so what the WAL held is counted as written to the database too."""
    db.executescript(SCHEMA)
    rows = rows_of(files)
    phases = []
    later = sum(min(count, total // 4) for _, count, _ in PHASES[1:])
    for index, (name, count, per_transaction) in enumerate(PHASES):
        phase = Phase(name, per_transaction)
        count = total - later if index == 0 else min(count, total // 4)
        with phase:
            while phase.records < count:
                batch = list(itertools.islice(rows, min(per_transaction, count - phase.records)))
                # Explicitly: with isolation_level=None, `with db` would open no transaction
                # and each row of executemany would commit on its own.
                db.execute("BEGIN")
                db.executemany(INSERT, batch)
                db.execute("COMMIT")
                phase.records += len(batch)
            if index == len(PHASES) - 1:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        phases.append(phase)
    assert sum(phase.records for phase in phases) == total and next(rows, None) is None
    return phases


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


def written(phase: Phase, log_bytes_per_record: float) -> str:
    per_record = phase.wchar / phase.records
    text = f"{per_record:,.0f} B ({per_record / log_bytes_per_record:.1f}× the log's own bytes)"
    if phase.storage:
        text += f"; {phase.storage / phase.records:,.0f} B reached storage"
    return text + f"; {phase.records / phase.seconds:,.0f} records/s"


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
    figures_path = home / "routerly-figures.json"
    measured = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    routerly, answers = measured.get("p50_ms", {}), measured.get("answers", {})
    records = meta["records"]
    log_per_record = log_bytes / records

    folder = Path(tempfile.mkdtemp(prefix="routerly-sqlite-bench-", dir=os.environ.get("BENCH_DIR", "/tmp")))
    try:
        path = folder / "usage.sqlite"
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        phases = load(db, files, records)
        disk = sum(p.stat().st_size for p in folder.iterdir())
        sidecar = index_bytes / max(indexed_records, 1)

        rows: list[tuple[str, str]] = [
            ("records", f"{records:,} ({log_per_record:,.0f} bytes of log each)"),
            (
                "on disk per record: SQLite vs the sidecar",
                f"**{disk / records:,.0f} B** (table and {INDEXES} indexes, {disk / 1e6:,.0f} MB) vs **{sidecar:,.1f} B** "
                f"({len(indexes)} rotated segments' `.idx`, {index_bytes / 1e6:,.1f} MB for {indexed_records:,} records; "
                "the active segment's blocks are in the checkpoint)",
            ),
        ]
        for phase in phases:
            rows.append(
                (
                    f"SQLite written per record, {phase.name} ({phase.records:,} records, {phase.per_transaction:,} a transaction)",
                    written(phase, log_per_record),
                )
            )
        if "checkpoint bytes" in routerly:
            checkpoint = routerly["checkpoint bytes"]
            rows.append(
                (
                    "Routerly written besides the log",
                    f"the `.idx` once per rotated segment ({sidecar:,.1f} B per record); the checkpoint "
                    f"(rollups and the active segment's blocks, {checkpoint / 1e6:,.1f} MB here) rewritten whole every "
                    f"30 s in which calls came: at most {checkpoint / 30 / 1e6:,.2f} MB/s whatever the traffic",
                )
            )

        def page(where: str = "", args: tuple = (), offset: int = 0):
            hits = db.execute(
                f"SELECT segment, offset, len FROM calls {where} ORDER BY ts DESC LIMIT ? OFFSET ?",
                (*args, PAGE, offset),
            ).fetchall()
            return lines(files, hits)

        def summary():
            totals = db.execute(
                "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
                "sum(cache_write_tokens), sum(cost_usd), avg(latency_ms), avg(ttft_ms) FROM calls"
            ).fetchone()
            outcomes = db.execute("SELECT outcome, count(*) FROM calls GROUP BY outcome").fetchall()
            count = totals[0]
            p50, p95 = (
                db.execute("SELECT latency_ms FROM calls ORDER BY latency_ms LIMIT 1 OFFSET ?", (int(count * q),)).fetchone()
                for q in (0.5, 0.95)
            )
            return totals, outcomes, p50, p95

        def by_model():
            return db.execute(
                "SELECT model, outcome, count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), avg(latency_ms) "
                "FROM calls GROUP BY model, outcome"
            ).fetchall()

        day_from, day_to = millis(meta["day_from"]), millis(meta["day_to"])
        questions = [
            ("summary", "tokens, cost, outcomes, mean and p50/p95 latency by SQL over the table", summary),
            ("by model", "GROUP BY model, outcome", by_model),
            ("page of 50 calls", "", lambda: page()),
            ("page 20 (offset 1000)", "", lambda: page(offset=1000)),
            ("filtered page: one project", "", lambda: page("WHERE project = ?", (meta["project"],))),
            ("filtered page: timeouts", "", lambda: page("WHERE outcome = 'timeout'")),
            ("filtered page: one token's errors", "", lambda: page("WHERE token = ? AND outcome = 'error'", (meta["token"],))),
            ("filtered page: one model, one day", "", lambda: page(
                "WHERE model = ? AND ts >= ? AND ts < ?", (meta["model"], day_from, day_to))),
            ("trace look-up (newest)", "", lambda: page("WHERE trace = ?", (meta["newest_trace"],))),
            ("trace look-up (mid-history)", "", lambda: page("WHERE trace = ?", (meta["middle_trace"],))),
        ]
        compared = []
        for name, how, run in questions:
            p50, p95, answer = timed(run)
            if name.startswith("trace"):
                assert len(answer) == 1 and answer[0]["trace_id"] in (meta["newest_trace"], meta["middle_trace"]), name
            if name in answers:
                # The same question: the same calls, in the same order, as Routerly answered.
                assert [record["id"] for record in answer] == answers[name], f"SQLite and Routerly differ on {name}"
            elif name.startswith(("page", "filtered", "trace")):
                assert answer, f"{name}: no records"
            theirs = routerly.get(name)
            compared.append(
                (name + (f" ({how})" if how else ""), f"{p50:.2f} ms (p95 {p95:.2f})", "" if theirs is None else f"{theirs:.1f} ms")
            )
        db.close()
    finally:
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    print(f"\n| {records:,} records, SQLite as a derived index | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    floor = routerly.get("HTTP round trip (GET /ready)")
    routerly_head = "Routerly p50, over HTTP" + (f" (of which {floor:.2f} ms is any request's round trip)" if floor else "")
    print(f"\n| question | SQLite p50, in-process | {routerly_head} |\n|---|---|---|")
    for name, sqlite_figure, routerly_figure in compared:
        print(f"| {name} | {sqlite_figure} | {routerly_figure} |")


if __name__ == "__main__":
    main()
