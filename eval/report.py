"""Reports of an evaluation: a terminal table, ``report.json``, ``report.md`` and PNG plots.

Everything here renders numbers that ``eval.evaluate`` already computed; nothing is measured
here. Plots need matplotlib (drawn with the Agg backend: no display on the machines); without it
the text reports are still written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.evaluate import Record

# (label, key in a summary, how to show it)
Row = tuple[str, str, str]
ROWS: tuple[Row, ...] = (
    ("gold doc in top 1", "doc_hit_at_1", "pct"),
    ("gold doc in top 5", "doc_hit_at_5", "pct"),
    ("MRR (documents)", "mrr", "f3"),
    ("evidence@1", "evidence_at_1", "pct"),
    ("evidence@3", "evidence_at_3", "pct"),
    ("exact match", "exact_match", "pct"),
    ("token F1", "f1", "pct"),
    ("answer hit", "answer_hit", "pct"),
    ("F1 when answered", "f1_when_answered", "pct"),
    ("unanswerable: abstained", "unanswerable_abstained", "pct"),
    ("answerable: false abstention", "false_abstention", "pct"),
    ("accuracy (answers + abstentions)", "accuracy", "pct"),
    ("ECE (10 bins)", "ece", "f3"),
    ("citation fidelity", "citation_fidelity", "pct"),
    ("latency p50", "p50_ms", "ms"),
    ("latency p95", "p95_ms", "ms"),
)


def fmt(value: Any, kind: str) -> str:
    """One cell: percentages with one decimal, ratios with three, latencies in ms; n/a for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "f3":
        return f"{value:.3f}"
    if kind == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    return str(value)


def _best(summary: Mapping[str, Any]) -> str:
    b = summary.get("best_threshold")
    if not b:
        return "n/a"
    return f"{b['threshold']:.3g} → {100 * b['accuracy']:.1f}%"


ANSWERABLE_KEYS = ("mrr", "evidence_at_1", "evidence_at_3", "exact_match", "f1", "answer_hit")


def table_rows(summaries: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Header plus one row per metric, one column per method."""
    methods = list(summaries)
    first = summaries[methods[0]]
    rows = [["metric", *methods]]
    rows.append(["questions (answerable / not)", *[f"{s['answerable']} / {s['unanswerable']}" for s in summaries.values()]])
    for label, key, kind in ROWS:
        needs_answerable = key.startswith("doc_") or key in ANSWERABLE_KEYS
        if needs_answerable and not first["answerable"]:
            continue
        if key == "unanswerable_abstained" and not first["unanswerable"]:
            continue
        rows.append([label, *[fmt(s.get(key), kind) for s in summaries.values()]])
    if first["answerable"] and first["unanswerable"]:
        rows.append(["confidence AUC (answerable vs not)", *[fmt(s.get("confidence_auc"), "f3") for s in summaries.values()]])
        rows.append(["unanswerable abstained at ≤10% false abst.",
                     *[fmt((s.get("at_10pct_false_abstentions") or {}).get("unanswerable_abstained"), "pct")
                       for s in summaries.values()]])
    rows.append(["best threshold → accuracy", *[_best(s) for s in summaries.values()]])
    return rows


def render_text_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_md_table(rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def sweep_excerpt(summary: Mapping[str, Any], thresholds: Sequence[float] = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> list[list[str]]:
    """The sweep at a few round thresholds (the first point at or above each), for reading."""
    pts = summary.get("sweep") or []
    rows = [["threshold", "coverage", "precision", "accuracy"]]
    for t in thresholds:
        p = next((p for p in pts if p["threshold"] >= t), None)
        if p is None:
            continue
        rows.append([f"≥ {t:.1f}", fmt(p["coverage"], "pct"), fmt(p["precision"], "pct"), fmt(p["accuracy"], "pct")])
    return rows


# --- markdown -----------------------------------------------------------------------------------


def _q(s: str) -> str:
    """Markdown-safe one-liner."""
    return " ".join(s.split()).replace("|", "\\|")


def failure_md(rec: Record, method: str = "citeqa", max_citations: int = 3) -> str:
    it = rec.item
    s = rec.results[method]
    lines = [f"#### `{it.id}` {_q(it.question)}", ""]
    if it.answerable:
        lines.append(f"- **gold**: {' · '.join(_q(a) for a in it.answers)} — in {', '.join(f'`{d}`' for d in it.doc_ids)}")
        for ev in it.evidence:
            lines.append(f"  - evidence: {_q(ev)}")
    else:
        lines.append("- **gold**: not answerable from the corpus (right behaviour: abstain)")
    said = "*abstained*" if s.abstained else f"**{_q(s.answer or '')}**"
    why = []
    if it.answerable:
        why.append(f"F1 {s.f1:.2f}")
        why.append("gold doc " + (f"at rank {s.doc_rank}" if s.doc_rank else "not cited"))
        why.append("evidence@3 " + ("yes" if s.evidence_at_3 else "no"))
    lines.append(f"- **{method}**: {said} (confidence {s.confidence:.2f}; {', '.join(why) or 'answered instead of abstaining'})")
    for i, c in enumerate(s.citations[:max_citations], start=1):
        lines.append(f"  {i}. `{c.get('doc_id')}` [{c.get('start')}:{c.get('end')}] score {c.get('score')}: {_q(str(c.get('sentence', '')))}")
    for other, o in rec.results.items():
        if other == method:
            continue
        top = o.citations[0] if o.citations else {}
        mark = "✓" if o.correct else "✗"
        lines.append(f"- {other} {mark}: `{top.get('doc_id', '')}` {_q(str(top.get('sentence', '')))[:300]}")
    lines.append("")
    return "\n".join(lines)


def section_md(name: str, info: Mapping[str, Any], records: Sequence[Record], plots: Sequence[Path], out_dir: Path) -> str:
    summaries = info["methods"]
    parts = [f"## {name}", ""]
    for key, val in info.get("about", {}).items():
        parts.append(f"- {key}: {val}")
    parts += ["", render_md_table(table_rows(summaries)), ""]
    parts.append(
        "Retrieval, evidence and answer figures are over answerable questions; an abstention "
        "scores 0 there. A citeqa answer is *correct* when its token F1 against a gold answer is "
        "at least 0.5; for an unanswerable question, when it abstains. The baselines answer with "
        "their whole top sentence and never abstain; their sweep thresholds the top retrieval score."
    )
    parts.append("")
    for p in plots:
        parts += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})", ""]
    if "citeqa" in summaries:
        parts += ["Confidence threshold sweep (citeqa):", "", render_md_table(sweep_excerpt(summaries["citeqa"])), ""]
    for w in info.get("warnings", []):
        parts.append(f"> warning: {w}")
    method = "citeqa" if "citeqa" in summaries else next(iter(summaries))
    failed = [r for r in records if method in r.results and not r.results[method].correct]
    parts += [f"### Failed questions ({method}): {len(failed)} of {len(records)}", ""]
    parts += [failure_md(r, method) for r in failed]
    return "\n".join(parts)


def write_markdown(path: Path, meta: Mapping[str, Any], sections: Sequence[str]) -> None:
    head = ["# citeqa evaluation report", ""]
    head += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in meta.items()]
    path.write_text("\n".join(head) + "\n\n" + "\n\n".join(sections) + "\n", encoding="utf-8")


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# --- plots --------------------------------------------------------------------------------------


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(
    prefix: str,
    records: Sequence[Record],
    summaries: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Confidence of answerable vs unanswerable questions, and coverage vs precision per method."""
    if not plots_available():
        log("note: matplotlib is not installed; skipping the PNG plots")
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    if "citeqa" in summaries:
        ans = [r.results["citeqa"].confidence for r in records if r.item.answerable and "citeqa" in r.results]
        una = [r.results["citeqa"].confidence for r in records if not r.item.answerable and "citeqa" in r.results]
        good = [r.results["citeqa"].confidence for r in records if r.item.answerable and r.results.get("citeqa") and r.results["citeqa"].correct_if_answered]
        fig, ax = plt.subplots(figsize=(6.4, 4))
        bins = [i / 20 for i in range(21)]
        if ans:
            ax.hist(ans, bins=bins, alpha=0.55, label=f"answerable (n={len(ans)})", color="tab:blue")
        if good:
            ax.hist(good, bins=bins, histtype="step", linewidth=1.5, label=f"answerable, answered right (n={len(good)})", color="tab:green")
        if una:
            ax.hist(una, bins=bins, alpha=0.55, label=f"unanswerable (n={len(una)})", color="tab:red")
        ax.set_xlabel("citeqa confidence")
        ax.set_ylabel("questions")
        ax.set_title(f"{prefix}: confidence by question kind")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"{prefix}-confidence.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for method, s in summaries.items():
        pts = [p for p in s.get("sweep", []) if p["precision"] is not None]
        if not pts:
            continue
        pts.sort(key=lambda p: p["coverage"])
        ax.plot([p["coverage"] for p in pts], [p["precision"] for p in pts], label=f"{method} ({s.get('sweep_signal')})", marker="." if len(pts) < 40 else None)
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("precision (share of answers correct)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{prefix}: precision vs coverage as the threshold falls")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out_dir / f"{prefix}-coverage.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)
    return written
