"""The demo's report: Markdown and HTML beside five PNG plots, from the run's summary."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tierml.experiments.e2e import STRATEGIES

FIGURES = {
    "latency_vs_bandwidth": "Measured p50 latency per strategy across uplink bandwidths",
    "accuracy_front": "Pareto front: predicted latency against accuracy (exit thresholds)",
    "exit_rates": "Early exits: the measured curve, the planner's setting, the share measured",
    "bytes_per_request": "Bytes sent by the device per request",
    "timeline": "The stream: the edge killed and restarted, then the bandwidth ÷10",
}


def write_report(summary: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write report.md, report.html and the figures; return their paths and where
    summary.json goes (:func:`write_summary`)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    drawers = {
        "latency_vs_bandwidth": _latency,
        "accuracy_front": _front,
        "exit_rates": _exits,
        "bytes_per_request": _bytes,
        "timeline": _timeline,
    }
    images = {}
    for name, draw in drawers.items():
        fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
        draw(ax, summary)
        ax.set_title(FIGURES[name], fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(_tmp(path), format="png")
        plt.close(fig)
        os.replace(_tmp(path), path)
        images[name] = str(path)
    sections = _sections(summary)
    paths = {
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
        "summary": out_dir / "summary.json",
    }
    _write(paths["markdown"], _markdown(sections))
    _write(paths["html"], _html(sections))
    return {k: str(v) for k, v in paths.items()} | {"images": images}


def write_summary(summary: dict[str, Any]) -> None:
    """summary.json, where the report says it is, once the summary is complete."""
    _write(Path(summary["report"]["summary"]), json.dumps(summary, indent=1, default=str))


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _write(path: Path, text: str) -> None:
    _tmp(path).write_text(text)
    os.replace(_tmp(path), path)  # a reader never sees half a report


# -- figures -----------------------------------------------------------------------------------
def _latency(ax: Any, s: dict[str, Any]) -> None:
    points = s["points"]
    bws = [p["bandwidth_mbps"] for p in points]
    for name in STRATEGIES:
        ys = [p["measured_p50_ms"].get(name, float("nan")) for p in points]
        ax.plot(
            bws,
            ys,
            marker="o",
            lw=2.5 if name == "tierml" else 1.2,
            label=name,
            zorder=3 if name == "tierml" else 2,
        )
    pred = [p["predicted_ms"].get("tierml", float("nan")) for p in points]
    ax.plot(bws, pred, ls="--", color="black", lw=1, label="tierml predicted")
    _log_plain(ax, "x")
    _log_plain(ax, "y")
    ax.set_xlabel("device uplink (Mbit/s)")
    ax.set_ylabel("latency p50 (ms)")
    ax.legend(fontsize=7, ncol=2)


def _front(ax: Any, s: dict[str, Any]) -> None:
    front = s["accuracy_front"]
    ax.plot(
        [f["latency_ms"] for f in front],
        [f["accuracy"] for f in front],
        marker="o",
        lw=2,
        label="tierml front",
    )
    for name, p in s["planned_at_start"].items():
        if name != "tierml":
            ax.scatter(p["predicted_ms"], p["accuracy"], marker="x", s=40)
            ax.annotate(name, (p["predicted_ms"], p["accuracy"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"predicted latency (ms) at {s['stream']['start_mbps']:g} Mbit/s")
    ax.set_ylabel("top-1 accuracy")
    ax.legend(fontsize=7)


def _exits(ax: Any, s: dict[str, Any]) -> None:
    """The exit curve (each threshold: share leaving early, accuracy), the setting the
    planner chose, and the share measured on tierml's plan at each bandwidth."""
    by_criterion: dict[str, list[tuple[float, float]]] = {}
    for p in s["model"]["curve"]:  # names like max-softmax≥0.9, entropy≤0.1
        criterion = p["name"].replace("≥", "|").replace("≤", "|").split("|")[0]
        by_criterion.setdefault(criterion, []).append((sum(p["exit_share"][:-1]), p["accuracy"]))
    for criterion, xy in by_criterion.items():
        xy.sort()
        ax.plot(
            [x for x, _ in xy],
            [y for _, y in xy],
            marker=".",
            lw=1.2,
            label=f"exit curve, {criterion} thresholds (held-out digits)",
        )
    chosen = s["planned_at_start"]["tierml"]
    ax.scatter(
        sum(chosen["exit_share"]),
        chosen["accuracy"],
        s=80,
        marker="*",
        zorder=3,
        color="tab:red",
        label="the planner's setting (its codec included)",
    )
    for p in s["points"]:
        ax.axvline(p["exit_share"].get("tierml", 0.0), color="tab:green", lw=0.8, alpha=0.6)
    ax.axvline(
        s["stream"]["exit_rate"],
        color="tab:green",
        lw=2,
        label="measured on tierml's plans (thin: per bandwidth; thick: the stream)",
    )
    ax.axhline(s["model"]["accuracy"], color="gray", ls=":", lw=1, label="without exits")
    ax.set_xlabel("share of requests leaving at an early exit")
    ax.set_ylabel("top-1 accuracy")
    ax.legend(fontsize=7)


def _bytes(ax: Any, s: dict[str, Any]) -> None:
    points = s["points"]
    width = 0.8 / len(STRATEGIES)
    for k, name in enumerate(STRATEGIES):
        xs = [i + k * width for i in range(len(points))]
        ys = [max(p["bytes_up_mean"].get(name, 0.0), 1.0) for p in points]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(points))])
    ax.set_xticklabels([f"{p['bandwidth_mbps']:g}" for p in points])
    ax.set_yscale("log")
    ax.set_xlabel("device uplink (Mbit/s)")
    ax.set_ylabel("bytes up per request (mean; 1 = none)")
    ax.legend(fontsize=7, ncol=2)


def _timeline(ax: Any, s: dict[str, Any]) -> None:
    stream = s["stream"]
    rows = [r for r in stream["timeline"] if "ms" in r]
    for label, marker in (("static", "x"), ("adaptive", "o")):
        mine = [r for r in rows if r["client"] == label]
        ax.scatter(
            [r["t"] for r in mine],
            [r["ms"] for r in mine],
            s=8,
            marker=marker,
            label=f"{label} client",
            alpha=0.7,
        )
    for e in stream["events"]:
        ax.axvline(e["t"], color="gray", ls=":", lw=1)
        ax.annotate(
            e["event"],
            (e["t"], 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=90,
            va="top",
        )
    for r in stream["replans"]:
        ax.axvline(r["t"], color="tab:red", lw=0.8, alpha=0.6)
    _log_plain(ax, "y")
    ax.set_xlabel("time (s); red: adaptive client re-planned")
    ax.set_ylabel("request latency (ms)")
    ax.legend(fontsize=7)


def _log_plain(ax: Any, axis: str) -> None:
    """A log axis labelled 3, 10, 30 … rather than 3×10⁰."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    # 1-2-5 steps: a range narrower than a decade (13-40 ms) still gets labelled ticks.
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


# -- text --------------------------------------------------------------------------------------
Section = tuple[str, str, list[list[str]] | None, list[str] | None]  # title, text, table, image


def _sections(s: dict[str, Any]) -> list[Section]:
    topo, stream, checks = s["topology"], s["stream"], s["checks"]
    m = s["model"]
    out: list[Section] = []
    out.append(
        (
            "Model",
            f"{m['label']}: top-1 {m['accuracy']:.3f} on held-out MNIST-5k digits; exits at "
            + ", ".join(t["tensor"] for t in m["exits"])
            + f". Registered as {s['registry']['name']} version {s['registry']['version']}.",
            [["variant", "transform", "status", "accuracy", "bytes"]]
            + [
                [
                    v["name"],
                    v["transform"],
                    v["status"],
                    f"{v['metrics'].get('accuracy', float('nan')):.3f}",
                    str(v["metrics"].get("size_bytes", "")),
                ]
                for v in s["registry"]["variants"]
            ],
            None,
        )
    )
    out.append(
        (
            "Topology",
            "Every tier runs on this host. Tier speed: "
            + topo["tier_emulation"]
            + "; slowdowns "
            + ", ".join(f"{k} {v:g}×" for k, v in topo["tiers"].items())
            + ". Links: "
            + topo["link_emulation"]
            + "; "
            + ", ".join(f"{k} {v}" for k, v in topo["links"].items())
            + ".",
            None,
            None,
        )
    )
    planned = s["planned_at_start"]
    out.append(
        (
            f"Plans at {stream['start_mbps']:g} Mbit/s",
            "The plan beside every baseline, as the planner predicts them.",
            [["strategy", "plan", "predicted ms", "accuracy"]]
            + [
                [k, v["plan"], f"{v['predicted_ms']:.1f}", f"{v['accuracy']:.3f}"]
                for k, v in planned.items()
            ],
            [FIGURES["accuracy_front"], "accuracy_front.png"],
        )
    )
    verdict = "beats or equals" if checks["plan_beats_or_equals_every_baseline"] else "loses to"
    out.append(
        (
            "Measured across bandwidths",
            f"Each strategy's plan run for real, requests interleaved. tierml's plan {verdict} "
            f"the best baseline at every bandwidth (p50, equal within "
            f"{checks['equal_within']:.0%}).",
            [["Mbit/s", *STRATEGIES]]
            + [
                [f"{p['bandwidth_mbps']:g}"]
                + [f"{p['measured_p50_ms'].get(k, float('nan')):.1f}" for k in STRATEGIES]
                for p in s["points"]
            ],
            [FIGURES["latency_vs_bandwidth"], "latency_vs_bandwidth.png"],
        )
    )
    start = next(p for p in s["points"] if p["bandwidth_mbps"] == stream["start_mbps"])
    out.append(
        (
            "Exits",
            f"At {stream['start_mbps']:g} Mbit/s, {start['exit_share'].get('tierml', 0):.0%} "
            "of the requests on tierml's plan left at an early exit (measured); the exit "
            f"curve predicted {sum(planned['tierml']['exit_share']):.0%}. During the stream: "
            f"{stream['exit_rate']:.0%}.",
            None,
            [FIGURES["exit_rates"], "exit_rates.png"],
        )
    )
    out.append(
        (
            "Bytes on the wire",
            f"At {stream['start_mbps']:g} Mbit/s the device sent "
            + ", ".join(f"{k} {v:,.0f} B" for k, v in start["bytes_up_mean"].items())
            + " per request (mean).",
            None,
            [FIGURES["bytes_per_request"], "bytes_per_request.png"],
        )
    )
    replans = "; ".join(f"{r['t']:.1f} s: {r['old']} → {r['new']}" for r in stream["replans"])
    out.append(
        (
            "Re-plan and fallback",
            f"{stream['requests_per_client']} requests per client from {stream['start_mbps']:g} "
            f"Mbit/s. Re-plans: {replans or 'none'}. Lost requests: {stream['lost_requests']}; "
            f"{stream['fallback_requests']} requests fell back while the {stream['kill_tier']} "
            "was down.",
            [["phase", "adaptive p50 ms", "static p50 ms"]]
            + [
                [
                    ph,
                    f"{v.get('adaptive', float('nan')):.1f}",
                    f"{v.get('static', float('nan')):.1f}",
                ]
                for ph, v in stream["p50_ms_by_phase"].items()
            ],
            [FIGURES["timeline"], "timeline.png"],
        )
    )
    used = sorted({r["plan"] for r in stream["timeline"] if "plan" in r}, key=lambda p: int(p[1:]))
    out.append(
        (
            "Plans the stream used",
            "",
            [["plan", "chosen as", "placement"]]
            + [[p, ", ".join(s["plans"][p]["labels"]), s["plans"][p]["plan"]] for p in used],
            None,
        )
    )
    return out


def _markdown(sections: Sequence[Section]) -> str:
    lines = ["# tierml demo report", ""]
    for title, text, rows, image in sections:
        lines += [f"## {title}", ""]
        if text:
            lines += [text, ""]
        if rows:
            lines += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
            lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            lines.append("")
        if image:
            lines += [f"![{image[0]}]({image[1]})", ""]
    return "\n".join(lines)


def _html(sections: Sequence[Section]) -> str:
    e = html.escape
    body = []
    for title, text, rows, image in sections:
        body.append(f"<h2>{e(title)}</h2>")
        if text:
            body.append(f"<p>{e(text)}</p>")
        if rows:
            head = "".join(f"<th>{e(c)}</th>" for c in rows[0])
            cells = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
            )
            body.append(f"<table><tr>{head}</tr>{cells}</table>")
        if image:
            body.append(
                f'<figure><img src="{e(image[1])}" alt="{e(image[0])}">'
                f"<figcaption>{e(image[0])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>tierml demo report</title>"
        f"<style>{style}</style></head><body><h1>tierml demo report</h1>"
        + "\n".join(body)
        + "</body></html>\n"
    )
