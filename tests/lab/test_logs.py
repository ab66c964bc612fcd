"""Container logs of the lab model: zap's production JSON, raw lines, repeats computed by index."""

from __future__ import annotations

import json
import random
import time

import pytest

from runbook_lab.logs import NS, ContainerLog, go_float, render_zap, rfc3339_nano_fixed, to_ns

NOW = 1_770_000_000.25
NOW_NS = to_ns(NOW)  # 1770000000250000000, exactly


def fail_line(**extra) -> dict:
    return {"level": "error", "caller": "controllers/provision.go:335", "msg": "machine provision failed",
            "context": {"id": "outghost-prime-workers-6g7cgc"},
            "fields": {"error": "not authorized to access endpoint", "step": "pickNode"}, **extra}


def test_zap_key_order_matches_the_providers_lines():
    line = ContainerLog([fail_line(ago=10)], NOW)[0]
    doc = json.loads(line.text)
    assert list(doc) == ["level", "ts", "caller", "msg", "controller", "namespace", "type", "id", "job",
                         "error", "step", "stacktrace"]
    assert doc["controller"] == "proxmox.ProvisionController" and doc["job"] == "reconcile"
    assert doc["namespace"] == "infra-provider" and doc["type"] == "MachineRequests.omni.sidero.dev"
    # float64(1769999990250000000) / 1e9 rounds twice, as zap's epoch encoder does
    assert line.text.startswith('{"level":"error","ts":1769999990.2499998,"caller":"controllers/provision.go:335",')
    assert doc["stacktrace"].splitlines()[1] == \
        "\t/go/pkg/mod/github.com/siderolabs/omni/client@v1.3.0/pkg/infra/controllers/provision.go:335"


def test_context_keys_override_the_controller_defaults_in_place():
    head, tail = render_zap({"msg": "x", "context": {"controller": "other.Controller", "id": "m"}})
    doc = json.loads(head + "1" + tail)
    assert list(doc) == ["level", "ts", "msg", "controller", "namespace", "type", "id", "job"]
    assert doc["controller"] == "other.Controller" and doc["id"] == "m"


@pytest.mark.parametrize("level, has_trace", [("debug", False), ("info", False), ("warn", False),
                                              ("error", True), ("dpanic", True), ("fatal", True)])
def test_stacktrace_only_from_error_level(level, has_trace):
    text = ContainerLog([{"ago": 1, "level": level, "caller": "a/b.go:7", "msg": "m"}], NOW)[0].text
    assert ("stacktrace" in json.loads(text)) is has_trace


def test_values_are_encoded_like_zap():
    entry = {"ago": 0, "msg": 'quote " tab \t bell \x07 arrow -> <x>', "fields": {
        "busy": 0.140967833, "interval": 60.0, "requeued": True, "n": 3, "tiny": 1e-05,
        "schematic": {"extensions": ["a"], "cmd": "<b>"}}}
    text = ContainerLog([entry], NOW)[0].text
    assert '"msg":"quote \\" tab \\t bell \\u0007 arrow -> <x>"' in text  # zap does not HTML-escape strings
    assert '"busy":0.140967833,"interval":60,"requeued":true,"n":3,"tiny":0.00001' in text
    assert '"schematic":{"extensions":["a"],"cmd":"\\u003cb\\u003e"}' in text  # maps go through encoding/json
    assert json.loads(text)["n"] == 3


def test_raw_lines_and_streams_are_kept():
    log = ContainerLog([{"ago": 5, "raw": "Error: rpc error: code = Unavailable desc = x"},
                        {"ago": 4, "raw": "to stdout", "stream": "stdout"}], NOW)
    assert [(line.stream, line.text) for line in log.lines()] == [
        ("stderr", "Error: rpc error: code = Unavailable desc = x"), ("stdout", "to stdout")]
    with pytest.raises(ValueError, match="stdout or stderr"):
        ContainerLog([{"ago": 1, "raw": "x", "stream": "stdin"}], NOW)


def test_repeats_end_at_ago_spaced_by_every_and_never_go_backwards():
    log = ContainerLog([{"ago": 100, "raw": "a"},
                        {"ago": 90, "raw": "b", "repeat": 4, "every": 5},
                        {"ago": 200, "raw": "c", "repeat": 2}], NOW)  # c lies before b: moved up to it
    stamps = [(line.text, (line.ts_ns - NOW_NS) / NS) for line in log.lines()]
    assert stamps == [("a", -100), ("b", -100), ("b", -100), ("b", -95), ("b", -90), ("c", -90), ("c", -90)]
    assert len(log) == 7


def test_index_lookup_agrees_with_a_linear_scan():
    rng = random.Random(7)
    entries = [{"ago": rng.randint(0, 5000), "raw": f"e{i}", "repeat": rng.randint(1, 40),
                "every": rng.choice([0, 1, 7, 60])} for i in range(60)]
    log = ContainerLog(entries, NOW)
    stamps = [line.ts_ns for line in log.lines()]
    assert stamps == sorted(stamps)
    assert stamps == [log[i].ts_ns for i in range(len(log))]
    for _ in range(300):
        t = NOW_NS - to_ns(rng.uniform(-10, 9000))
        expected = next((i for i, ts in enumerate(stamps) if ts >= t), len(stamps))
        assert log.index_at(t) == expected


def test_a_million_line_log_is_cut_by_index_without_rendering_it():
    log = ContainerLog([{"ago": 3600, "level": "info", "msg": "starting infra provider"},
                        fail_line(ago=0, repeat=1_000_000, every=0.5)], NOW)
    start = time.perf_counter()
    window = log.window(tail=3)
    tail = list(log.lines(window))
    since = log.window(since_ns=NOW_NS - NS)
    elapsed = time.perf_counter() - start
    assert len(log) == 1_000_001 and window == range(999_998, 1_000_001)
    assert [line.ts_ns - NOW_NS for line in tail] == [-NS, -NS // 2, 0]
    assert [json.loads(line.text)["ts"] for line in tail] == pytest.approx([NOW - 1.0, NOW - 0.5, NOW], abs=1e-6)
    assert since == range(999_998, 1_000_001)  # the lines at -1.0, -0.5 and 0 s
    assert log[0].text.endswith('"msg":"starting infra provider"}')
    assert elapsed < 0.05, f"tail of a 10^6-line log took {elapsed:.3f}s"


def test_two_million_repeats_stream_lazily():
    log = ContainerLog([fail_line(ago=0, repeat=2_000_000, every=1)], NOW)
    start = time.perf_counter()
    first = [line for _, line in zip(range(1000), log.lines())]
    assert time.perf_counter() - start < 0.1
    assert len(first) == 1000 and len(log) == 2_000_000
    assert first[0].ts_ns == NOW_NS - 1_999_999 * NS


def test_until_and_since_bound_the_window():
    log = ContainerLog([{"ago": a, "raw": str(a)} for a in (50, 40, 30, 20, 10)], NOW)
    r = log.window(since_ns=NOW_NS - 40 * NS, until_ns=NOW_NS - 20 * NS)
    assert [line.text for line in log.lines(r)] == ["40", "30", "20"]
    assert [line.text for line in log.lines(log.window(tail=2, until_ns=NOW_NS - 30 * NS))] == []


@pytest.mark.parametrize("value, text", [(1770198574.1586897, "1770198574.1586897"), (60.0, "60"),
                                         (1e-05, "0.00001"), (0.140967833, "0.140967833"), (-2.5, "-2.5")])
def test_go_float_is_shortest_decimal_without_exponent(value, text):
    assert go_float(value) == text


def test_docker_timestamps_have_nine_fractional_digits():
    assert rfc3339_nano_fixed(1_764_237_793_123_000_000) == "2025-11-27T10:03:13.123000000Z"
    assert rfc3339_nano_fixed(1_764_237_793 * NS) == "2025-11-27T10:03:13.000000000Z"
