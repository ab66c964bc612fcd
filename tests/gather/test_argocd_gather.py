"""What the ArgoCD gathering makes of the Kubernetes objects it reads."""

from __future__ import annotations

from runbook_lib.gather.argocd import summarize_endpoints, summarize_event


def test_endpoints_summary_reads_endpoints_then_slices():
    eps = [{"metadata": {"name": "a"}, "subsets": [{"addresses": [{"ip": "1.1.1.1"}],
                                                    "notReadyAddresses": [{"ip": "1.1.1.2"}]}]},
           {"metadata": {"name": "b"}}]  # no subsets key at all: kubectl shows <none>
    slices = [{"metadata": {"labels": {"kubernetes.io/service-name": "c"}},
               "endpoints": [{"addresses": ["2.2.2.2"], "conditions": {"ready": False}}]},
              {"metadata": {"labels": {"kubernetes.io/service-name": "a"}}, "endpoints": None}]
    out = summarize_endpoints(eps, slices)
    assert out["a"]["ready"] == ["1.1.1.1"] and out["a"]["not_ready"] == ["1.1.1.2"]
    assert out["b"]["ready"] == [] and out["c"] == {"exists": True, "ready": [], "not_ready": ["2.2.2.2"],
                                                     "source": "EndpointSlice"}


def test_event_last_seen_falls_back_to_series_and_event_time():
    new_style = {"metadata": {"namespace": "m", "creationTimestamp": "2026-01-01T00:00:00Z"},
                 "involvedObject": {"name": "ds", "kind": "DaemonSet", "namespace": "m"}, "reason": "FailedCreate",
                 "message": "x", "count": None, "lastTimestamp": None, "eventTime": "2026-01-01T00:00:05.000000Z",
                 "series": {"count": 4, "lastObservedTime": "2026-01-01T00:09:00.000000Z"}}
    out = summarize_event(new_style)
    assert out["last_seen"] == "2026-01-01T00:09:00.000000Z" and out["count"] == 4
    new_style["series"] = None
    assert summarize_event(new_style)["last_seen"] == "2026-01-01T00:00:05.000000Z"
