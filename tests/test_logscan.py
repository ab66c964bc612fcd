"""The streaming log scanner: bounded memory, epochs, and batch scanning equal to line scanning."""

from __future__ import annotations

import json
import random

from provider_lines import REAL_LINES

from runbook_lib.logscan import LogScan
from runbook_lib.model.provider_log import LOG_CATEGORIES, LOG_TRIGGERS, START_LINE

START = '{"level":"info","ts":1.0,"caller":"main.go:117","msg":"starting infra provider"}'
SAMPLES = [
    '{"level":"info","ts":2.0,"caller":"qruntime/qruntime.go:310","msg":"reconcile succeeded","busy":0.1}',
    '{"level":"error","ts":3.0,"msg":"machine provision failed","error":"not authorized to access endpoint","step":"pickNode"}',  # noqa: E501  (a real line, as it is)
    "Error: rpc error: code = Unauthenticated desc = invalid signature",
    '{"level":"error","ts":4.0,"msg":"reconcile failed","error":"boom","interval":60}',
    'Error: rpc error: code = Unavailable desc = connection error: desc = "transport: x509: unknown authority"',
    "plain text with \ufffd replaced bytes",
    START,
]


def test_batches_with_triggers_equal_lines_with_regexes():
    rng = random.Random(7)
    lines = [rng.choice(SAMPLES) for _ in range(5000)]
    one = LogScan(LOG_CATEGORIES, reset=START_LINE)  # the regexes alone, line by line
    for line in lines:
        one.feed("stderr", line)
    many = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset=START_LINE)
    i = 0
    while i < len(lines):
        n = rng.randint(1, 400)
        many.feed_lines("stderr", lines[i:i + n])
        i += n
    assert one.summary() == many.summary()
    assert one.restarts == lines.count(START)


def test_every_line_a_category_matches_holds_a_trigger():
    import re

    for line in REAL_LINES + SAMPLES:
        if any(re.search(rx, line) for rx in LOG_CATEGORIES.values()):
            assert any(t in line for t in LOG_TRIGGERS), line


def test_only_the_last_epoch_counts_but_errors_are_all_counted():
    scan = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset=START_LINE)
    scan.feed_lines("stderr", [START, SAMPLES[2], SAMPLES[2], START, SAMPLES[1]])
    assert scan.count("key_invalid") == 0 and scan.count("proxmox_auth") == 1
    assert scan.errors[SAMPLES[2][:120]] == 2 and scan.errors["machine provision failed"] == 1


def test_memory_is_bounded_by_keep_and_tail():
    scan = LogScan(LOG_CATEGORIES, keep=3, tail=10)
    scan.feed_lines("stderr", [SAMPLES[1]] * 100_000)
    s = scan.summary()
    assert s["lines"] == 100_000 and s["categories"]["proxmox_auth"]["count"] == 100_000
    assert len(s["categories"]["proxmox_auth"]["examples"]) == 6 and len(s["tail"]) == 10
    assert len(json.dumps(s)) < 10_000


def test_lines_are_rendered_compactly_and_redacted():
    scan = LogScan(LOG_CATEGORIES)
    shown = scan.render('{"level":"error","ts":1770985496.12,"msg":"machine provision failed","id":"w-1",'
                        '"error":"password=hunter22 rejected","step":"syncVM","stacktrace":"long\\n\\tgo"}')
    assert shown.startswith("2026-02-13T12:24:56Z error machine provision failed id=w-1 step=syncVM")
    assert "hunter22" not in shown and "stacktrace" not in shown
