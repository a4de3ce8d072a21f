"""Routerly under load when it is stopped: SIGTERM drains and records everything; SIGKILL
loses at most the usage writer's 100 ms window and never leaves a corrupt line.

A few hundred requests start on a schedule spread over LOAD_SECONDS (both SDKs, both
providers, streams slowed by `[mock:chunk_delay_ms]` so many are in flight), and the signal
arrives in the middle: at SIGNAL_AT, or later if by then fewer than a tenth of the calls have
completed or fewer than ten streams are in flight (a loaded machine runs the client's 300
threads slowly); the calls scheduled after SIGNAL_AT wait for the signal, so a share of them
always meets the closed listener. Which requests "reached Routerly" is known from the client side: those
that got an answer head, whose `x-routerly-trace-id` names their usage record.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    MODELS,
    OPENAI_MODEL,
    Routerly,
    hello,
    psql,
    read_usage_file,
    spawn_routerly,
    start_routerly,
)

REQUESTS = 300
LOAD_SECONDS = 2.0  # request i starts at i / REQUESTS * LOAD_SECONDS
SIGNAL_AT = 1.2  # seconds after the first request, at the earliest
SIGNAL_LATEST = 15.0  # the signal comes by then whatever the load's progress
AFTER_SIGNAL = 0.3  # calls scheduled past SIGNAL_AT start this long after the signal at the earliest
CHUNK_DELAY_MS = 60  # between stream events: a stream lasts ~0.5-1 s
SLOW_HEAD_MS = 300  # some whole answers wait this long before their head
WRITER_BOUND = 0.100  # the usage writer fsyncs at least this often
KILL_MARGIN = 0.100  # client-side timestamps vs. the server's: scheduling on a loaded box

KINDS = [
    (sdk, model, stream)
    for sdk in ("openai", "anthropic")
    for model in MODELS
    for stream in (False, True)
]


@dataclasses.dataclass
class Call:
    """One request of the load, as its client saw it."""

    index: int
    sdk: str
    model: object
    stream: bool
    text_sent: str
    sent_at: float = 0.0  # monotonic
    head_at: float | None = None  # the answer's head arrived (the request reached Routerly)
    done_at: float | None = None  # the SDK returned the whole answer
    failed_at: float | None = None  # the SDK raised (for a refusal: after the refused connect)
    trace_id: str | None = None
    answer: str = ""
    finished: bool = False  # the stream's end event arrived (or a whole answer parsed)
    error: BaseException | None = None

    @property
    def expected_answer(self) -> str:
        return hello(self.model, self.text_sent)


def make_calls() -> list[Call]:
    calls = []
    for index in range(REQUESTS):
        sdk, model, stream = KINDS[index % len(KINDS)]
        directive = f"[mock:chunk_delay_ms={CHUNK_DELAY_MS}]" if stream else ""
        if not stream and index % 3 == 0:
            directive = f"[mock:delay_ms={SLOW_HEAD_MS}]"
        calls.append(Call(index, sdk, model, stream, f"load {index} {directive}".strip()))
    return calls


def run_call(call: Call, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": call.text_sent}]
    call.sent_at = time.monotonic()
    try:
        if call.sdk == "openai":
            raw = oai.chat.completions.with_raw_response.create(
                model=call.model.id, messages=messages, stream=call.stream
            )
            call.head_at, call.trace_id = time.monotonic(), raw.headers.get("x-routerly-trace-id")
            if call.stream:
                for chunk in raw.parse():
                    for choice in chunk.choices:
                        call.answer += choice.delta.content or ""
                        call.finished = call.finished or choice.finish_reason == "stop"
            else:
                completion = raw.parse()
                call.answer = completion.choices[0].message.content
                call.finished = completion.choices[0].finish_reason == "stop"
        else:
            raw = claude.messages.with_raw_response.create(
                model=call.model.id, max_tokens=128, messages=messages, stream=call.stream
            )
            call.head_at, call.trace_id = time.monotonic(), raw.headers.get("x-routerly-trace-id")
            if call.stream:
                for event in raw.parse():
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        call.answer += event.delta.text
                    call.finished = call.finished or event.type == "message_stop"
            else:
                message = raw.parse()
                call.answer = message.content[0].text
                call.finished = message.stop_reason == "end_turn"
        call.done_at = time.monotonic()
    except Exception as error:  # noqa: BLE001 (judged by the test)
        call.failed_at = time.monotonic()
        call.error = error


def run_load(routerly: Routerly, stop: callable) -> tuple[list[Call], float]:
    """Runs the load, calling `stop()` in its middle (see the module's documentation); the
    calls and when `stop` ran."""
    # The SDKs' default pools (1000 connections, 100 kept alive) hold the whole load.
    oai = openai.OpenAI(base_url=routerly.url + "/v1", api_key=routerly.token, max_retries=0, timeout=30)
    claude = anthropic.Anthropic(base_url=routerly.url, api_key=routerly.token, max_retries=0, timeout=30)
    # One request through each SDK first (a model list: no usage record): their first request
    # sets the client up lazily, which took over a second with 300 threads starting at once
    # on a loaded machine.
    assert oai.models.list().data
    assert claude.models.list().data
    calls = make_calls()
    start = time.monotonic() + 0.2
    stopped_at: list[float] = []

    signalled = threading.Event()

    def scheduled(call: Call) -> None:
        at = call.index / REQUESTS * LOAD_SECONDS
        time.sleep(max(0.0, start + at - time.monotonic()))
        if at >= SIGNAL_AT:
            signalled.wait()
            time.sleep(max(0.0, stopped_at[0] + AFTER_SIGNAL - time.monotonic()))
        run_call(call, oai, claude)

    def in_the_middle() -> bool:
        done = sum(call.done_at is not None for call in calls)
        streaming = sum(call.stream and call.head_at is not None and call.done_at is None for call in calls)
        return done >= REQUESTS // 10 and streaming >= 10

    def signal_in_the_middle() -> None:
        time.sleep(max(0.0, start + SIGNAL_AT - time.monotonic()))
        while not in_the_middle() and time.monotonic() < start + SIGNAL_LATEST:
            time.sleep(0.01)
        stopped_at.append(time.monotonic())
        stop()
        signalled.set()

    stopper = threading.Thread(target=signal_in_the_middle)
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        stopper.start()
        list(pool.map(scheduled, calls))
    stopper.join()
    oai.close()
    claude.close()
    return calls, stopped_at[0]


def describe(calls: list[Call]) -> str:
    kinds = Counter(
        "answered" if call.error is None else f"{type(call.error).__name__}({type(call.error.__cause__).__name__})"
        for call in calls
    )
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))


def assert_refused_before_reaching_routerly(call: Call, signal_at: float) -> None:
    """A failed call got no answer head and never reached Routerly."""
    assert call.head_at is None and call.trace_id is None, f"call {call.index} failed after its head: {call.error!r}"
    assert isinstance(call.error, (openai.APIConnectionError, anthropic.APIConnectionError)), (
        f"call {call.index} failed with {call.error!r}, not a connection error"
    )
    assert not isinstance(call.error, (openai.APITimeoutError, anthropic.APITimeoutError)), repr(call.error)
    cause = call.error.__cause__
    # The SDKs' transport is `httpx` or its fork `httpx2`: the exceptions are named the same.
    # Refused at connect once the listener is closed; or, in the moment shutdown begins, the
    # connection closed before Routerly read the request: a kept-alive connection closed as
    # idle (the race HTTP/1.1 leaves open for non-idempotent requests), or one still in the
    # kernel's accept queue when the listener closed (reset). No head came back either way,
    # and the record check proves Routerly did not handle the request.
    name, text = type(cause).__name__, str(cause).lower()
    refused = name == "ConnectError" and "refused" in text
    idle_closed = name == "RemoteProtocolError" and "without sending a response" in text
    reset_unaccepted = name == "ReadError" and "reset" in text
    assert refused or idle_closed or reset_unaccepted, (
        f"call {call.index} (sent {call.sent_at - signal_at:+.3f}s from the signal) failed with {cause!r}"
    )
    # Refusals start with shutdown: the error comes after the refused connect, so one before
    # the signal would show the listener refusing while serving. (`sent_at` says nothing
    # here: with 300 client threads on a loaded machine, the SDK connected up to 1.2 s after
    # it, when the listener was already closed.)
    assert call.failed_at is not None and call.failed_at >= signal_at, (
        f"call {call.index} failed ({cause!r}) {signal_at - call.failed_at:.3f}s before the signal"
    )


def test_sigterm_under_load_drains_streams_and_records_each_call_once(mock_session):
    root = Path(tempfile.mkdtemp(prefix="routerly-e2e-"))
    try:
        routerly = start_routerly(mock_session, root)
        try:
            calls, signal_at = run_load(routerly, lambda: routerly.signal(signal.SIGTERM))
            code = routerly.wait(40)
        finally:
            if routerly.process.poll() is None:
                routerly.process.kill()
                routerly.process.wait(5)
        assert code == 0, f"exit code {code} after SIGTERM\n{routerly.log_tail()}"

        reached = [call for call in calls if call.head_at is not None]
        refused = [call for call in calls if call.head_at is None]
        in_flight_streams = [
            call
            for call in reached
            if call.stream and call.head_at < signal_at and call.done_at and call.done_at > signal_at
        ]
        summary = describe(calls)
        # The load is shaped so the signal lands in the middle of it.
        assert len(in_flight_streams) >= 10, f"{len(in_flight_streams)} streams in flight at SIGTERM: {summary}"
        assert len(refused) >= REQUESTS // 10, f"too few calls after SIGTERM: {summary}"
        assert sum(call.done_at < signal_at for call in reached if call.done_at) >= REQUESTS // 10, summary

        for call in reached:
            assert call.error is None, f"call {call.index} reached Routerly but failed: {call.error!r} ({summary})"
            assert call.trace_id, f"call {call.index} has no trace id"
            assert (call.answer, call.finished) == (call.expected_answer, True), (
                f"call {call.index} ({call.sdk} SDK, {call.model.id}, stream={call.stream}) got an incomplete answer"
            )
        for call in refused:
            assert_refused_before_reaching_routerly(call, signal_at)

        records, bad_lines = read_usage_file(routerly.usage_path)
        assert not bad_lines, f"unparseable lines after a clean shutdown: {bad_lines}"
        trace_ids = Counter(record["trace_id"] for record in records)
        duplicates = {trace: count for trace, count in trace_ids.items() if count > 1}
        assert not duplicates, f"traces recorded more than once: {duplicates}"
        assert len({record["id"] for record in records}) == len(records), "record ids repeat"
        expected = {call.trace_id for call in reached}
        assert set(trace_ids) == expected, (
            f"{len(expected - set(trace_ids))} calls without a record, "
            f"{len(set(trace_ids) - expected)} records of no answered call ({summary})"
        )
        by_trace = {record["trace_id"]: record for record in records}
        for call in reached:
            record = by_trace[call.trace_id]
            assert record["outcome"] == "success", record
            assert (record["model_id"], record["stream"]) == (call.model.id, call.stream), record
            assert record["output_tokens"] == len(call.answer.split()), record
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sigkill_under_load_loses_at_most_the_fsync_window(mock_session):
    root = Path(tempfile.mkdtemp(prefix="routerly-e2e-"))
    try:
        routerly = start_routerly(mock_session, root)
        try:
            calls, killed_at = run_load(routerly, routerly.process.kill)
            routerly.process.wait(10)
        finally:
            if routerly.process.poll() is None:
                routerly.process.kill()
                routerly.process.wait(5)
        summary = describe(calls)
        reached = [call for call in calls if call.head_at is not None]
        completed = [call for call in reached if call.done_at is not None]
        assert sum(call.done_at < killed_at for call in completed) >= REQUESTS // 10, summary

        lines = routerly.usage_path.read_text(encoding="utf-8", errors="replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last complete line
        _, bad_lines = read_usage_file(routerly.usage_path)
        assert bad_lines in ([], [lines[-1]]), f"corrupt lines other than a torn last one: {bad_lines}"
        records, _ = read_usage_file(routerly.usage_path)
        trace_ids = Counter(record["trace_id"] for record in records)
        assert max(trace_ids.values(), default=1) == 1, "a call recorded twice"
        answered = {call.trace_id for call in reached}
        assert set(trace_ids) <= answered, "records of calls that never reached Routerly"

        # Whatever completed well before the kill is on disk.
        deadline = killed_at - WRITER_BOUND - KILL_MARGIN
        must_be_on_disk = [call for call in completed if call.done_at < deadline]
        lost = [call for call in must_be_on_disk if call.trace_id not in trace_ids]
        assert not lost, (
            f"{len(lost)} of {len(must_be_on_disk)} calls that completed more than "
            f"{(WRITER_BOUND + KILL_MARGIN) * 1000:.0f} ms before SIGKILL have no record; the latest completed "
            f"{(killed_at - max(call.done_at for call in lost)) * 1000:.0f} ms before it ({summary})"
        )

        # A restart reads the log (a torn last line is skipped) and appends after it cleanly.
        with open(routerly.usage_path, "a", encoding="utf-8") as log:
            log.write('{"id":"torn-by-the-test","timest')
        log_path = root / "routerly-restart.log"
        routerly.process, routerly.url = spawn_routerly(routerly.home, routerly.env, log_path)
        routerly.log_path = log_path
        try:
            answer = openai.OpenAI(base_url=routerly.url + "/v1", api_key=routerly.token, max_retries=0)
            raw = answer.chat.completions.with_raw_response.create(
                model=OPENAI_MODEL.alias, messages=[{"role": "user", "content": "after the crash"}]
            )
            assert raw.parse().choices[0].message.content == hello(OPENAI_MODEL, "after the crash")
            after_crash = raw.headers["x-routerly-trace-id"]
            routerly.cli("auth", "login", "--url", routerly.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD)
            reported = routerly.reported_calls({after_crash})
            assert after_crash in {call["trace_id"] for call in reported}
        finally:
            code = routerly.stop()
        assert code == 0, f"exit code {code} after SIGTERM\n{routerly.log_tail()}"
        records_after, bad_after = read_usage_file(routerly.usage_path)
        assert len(bad_after) <= len(bad_lines) + 1, f"the restart corrupted the log: {bad_after}"
        assert after_crash in {record["trace_id"] for record in records_after}, "the record after the restart is lost"
        assert len(records_after) == len(records) + 1
        if routerly.database:
            # PostgreSQL + Redis: what the killed replica had logged but not shipped yet went
            # out after the restart; the shared history holds every record of the log, once.
            shipped = Counter(psql(routerly.database, "SELECT id FROM usage_records"))
            assert set(shipped) == {record["id"] for record in records_after}, (len(shipped), len(records_after))
            assert max(shipped.values()) == 1, shipped.most_common(3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
