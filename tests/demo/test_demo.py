"""`tierml demo --quick`, end to end as a user runs it: a new process, a fresh home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def run_demo(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierml", "demo", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(home), "COLUMNS": "200"},
        timeout=600,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("demo")
    out = root / "report"
    done = run_demo(root / "home", "--quick", "--format", "json", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), out


def test_the_plan_beats_or_equals_every_baseline_it_was_measured_against(quick):
    summary, _ = quick
    checks = summary["checks"]
    assert checks["measured"] == "p50 latency per request"
    assert len(checks["points"]) == 3  # every bandwidth of the quick sweep
    assert checks["plan_beats_or_equals_every_baseline"], checks["points"]
    for point in summary["points"]:
        assert {"tierml", "device-only", "cloud-only", "neurosurgeon", "dads"} <= set(
            point["measured_p50_ms"]
        )


def test_no_request_is_lost_through_the_drop_and_the_edge_failure(quick):
    summary, _ = quick
    stream = summary["stream"]
    assert [e["event"] for e in stream["events"]] == ["kill", "restart", "back", "drop"]
    assert stream["lost_requests"] == {"adaptive": 0, "static": 0}
    # The fault really hit: requests in flight to the dead edge fell back to another plan.
    assert stream["fallback_requests"] >= 1
    assert any(e["event"] == "edge down" for e in stream["client_events"]["adaptive"])
    # The adaptive client moved off the dead edge, back to it, and off it again after the drop.
    drop = next(e["t"] for e in stream["events"] if e["event"] == "drop")
    assert any(r["t"] > drop for r in stream["replans"]), "no re-plan after the 10× drop"
    assert all(r["old"] != r["new"] for r in stream["replans"])


def test_the_report_is_written_with_its_plots(quick):
    summary, out = quick
    report = summary["report"]
    for key in ("markdown", "html", "summary"):
        assert Path(report[key]).stat().st_size > 0
    assert len(report["images"]) == 5
    for image in report["images"].values():
        data = Path(image).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000
    html = Path(report["html"]).read_text()
    for image in report["images"].values():
        assert f'src="{Path(image).name}"' in html
    assert json.loads((out / "summary.json").read_text())["stream"]["timeline"]


def test_the_model_and_its_variants_are_registered(quick):
    summary, _ = quick
    registry = summary["registry"]
    assert registry["name"] == "demo-mnist-vgg" and registry["version"] == 1
    assert {v["name"] for v in registry["variants"]} >= {"fp16", "int8"}
    assert summary["model"]["exits"]


def test_an_output_path_that_is_a_file_is_a_one_line_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    done = run_demo(tmp_path / "home", "--quick", "--out", target)
    assert done.returncode == 2
    assert done.stderr.startswith("error[") and len(done.stderr.strip().splitlines()) == 1
    assert str(target) in done.stderr
