"""Turning an :class:`Evaluation` into numbers with intervals, goal checks, Markdown, JSON and plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.streams.evaluation.metrics import KS, Estimate, estimate, metric_names, ratio_interval, user_bootstrap_weights
from fusionrec.streams.evaluation.protocols import SLICES, Outcome
from fusionrec.streams.evaluation.run import COLLABORATIVE, Evaluation

HEADLINE = ("recall@20", "ndcg@20", "hit@20", "mrr")
METRICS = metric_names(KS)


@dataclass(frozen=True)
class Goal:
    text: str
    ratio: float
    low: float
    high: float
    target: float
    detail: str
    met_when: bool | None = None  # a goal that is not a ratio threshold

    @property
    def met(self) -> bool:
        return self.met_when if self.met_when is not None else self.ratio >= self.target

    def line(self) -> str:
        verdict = "met" if self.met else "NOT met"
        goal = "interval above the baseline's" if self.met_when is not None else f"{self.target:.2f}x"
        ratio = "no baseline hits" if math.isinf(self.ratio) else f"{self.ratio:.2f}x [{self.low:.2f}, {self.high:.2f}]"
        return f"{self.text}: {ratio} (goal: {goal}): **{verdict}** ({self.detail})"


class Summary:
    """Every metric of every model, slice and protocol as an :class:`Estimate` (user bootstrap)."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self.estimates: dict[tuple[str, str, str, str], Estimate] = {}
        self._boot: dict[tuple[str, str, str, str], np.ndarray] = {}
        cfg = evaluation.config
        for protocol, outcome in evaluation.outcomes.items():
            weights = user_bootstrap_weights(len(outcome.users), resamples=cfg.resamples, seed=cfg.seed)
            for name, tally in outcome.tallies.items():
                for slice_ in SLICES:
                    users, values, _ = tally.arrays(slice_)
                    if not len(values):
                        continue
                    for col, metric in enumerate(METRICS):
                        est, boot = estimate(values[:, col], users, weights)
                        self.estimates[protocol, name, slice_, metric] = est
                        self._boot[protocol, name, slice_, metric] = boot

    def get(self, protocol: str, model: str, metric: str, slice_: str = "all") -> Estimate | None:
        return self.estimates.get((protocol, model, slice_, metric))

    def ratio(self, protocol: str, a: str, b: str, metric: str, slice_: str = "all") -> tuple[float, float, float]:
        ea, eb = self.get(protocol, a, metric, slice_), self.get(protocol, b, metric, slice_)
        if ea is None or eb is None or eb.mean == 0:
            return (math.inf if ea and ea.mean > 0 else 0.0), 0.0, math.inf
        lo, hi = ratio_interval(self._boot[protocol, a, slice_, metric], self._boot[protocol, b, slice_, metric])
        return ea.mean / eb.mean, lo, hi

    def best(self, protocol: str, candidates: list[str], metric: str, slice_: str = "all") -> str | None:
        have = [(self.get(protocol, m, metric, slice_), m) for m in candidates]
        have = [(e.mean, m) for e, m in have if e is not None]
        return max(have)[1] if have else None

    def goals(self) -> list[Goal]:
        out: list[Goal] = []
        models = {p: list(o.tallies) for p, o in self.evaluation.outcomes.items()}
        for protocol in ("prequential", "global"):
            if protocol not in models or "hybrid" not in models[protocol]:
                continue
            baselines = [m for m in models[protocol] if not m.startswith("hybrid")]
            for metric in ("recall@20", "ndcg@20"):
                best = self.best(protocol, baselines, metric)
                if best:
                    r, lo, hi = self.ratio(protocol, "hybrid", best, metric)
                    out.append(Goal(f"{protocol}: hybrid vs best baseline, {metric}", r, lo, hi, 1.15,
                                    f"hybrid {self.get(protocol, 'hybrid', metric)}, {best} {self.get(protocol, best, metric)}"))
            collab = [m for m in baselines if m in COLLABORATIVE]
            best = self.best(protocol, collab, "recall@20", "cold_items")
            hybrid = self.get(protocol, "hybrid", "recall@20", "cold_items")
            if best and hybrid:
                other = self.get(protocol, best, "recall@20", "cold_items")
                r, lo, hi = self.ratio(protocol, "hybrid", best, "recall@20", "cold_items")
                # "Clearly above": the hybrid's whole interval above the best collaborative baseline's.
                out.append(Goal(f"{protocol}: cold items, hybrid vs best collaborative baseline, recall@20", r, lo, hi,
                                1.0, f"hybrid {hybrid}, {best} {other}", met_when=hybrid.low > other.high))  # type: ignore[union-attr]
            fusions = ("content:fused", "content:learned")
            singles = [m for m in models[protocol] if m.startswith("content:") and m not in fusions]
            for fused in (f for f in fusions if f in models[protocol] and singles):
                best = self.best(protocol, singles, "recall@20")
                r, lo, hi = self.ratio(protocol, fused, best, "recall@20")  # type: ignore[arg-type]
                kind = "learned fusion" if fused == "content:learned" else "fused content"
                out.append(Goal(f"{protocol}: {kind} vs best single modality, recall@20", r, lo, hi, 1.1,
                                f"{fused} {self.get(protocol, fused, 'recall@20')}, "
                                f"{best} {self.get(protocol, best, 'recall@20')}"))  # type: ignore[arg-type]
        return out


def markdown(summary: Summary) -> str:
    ev = summary.evaluation
    lines = [f"# fusionrec evaluate: {ev.dataset.name}", "", ev.dataset.describe() + ".",
             f"Encoders: {', '.join(f'{m} {v}' for m, v in ev.encoders.items())}."]
    if ev.als_params:
        lines.append(f"ALS: {ev.als_params}, the best of {len(ev.als_validation)} on the validation split "
                     "(end of training).")
    for protocol, weights in ev.rank_weights.items():
        how = (f"the best of {len(ev.rank_validation[protocol])} on the validation split in this protocol"
               if protocol in ev.rank_validation else "from the settings")
        lines.append(f"Hybrid ({protocol}): {weights}, {how}.")
    if ev.hybrid_table:
        lines.append(f"The hybrid ranks with the `{ev.hybrid_table}` item vectors; `hybrid:<table>` rows use the others.")
    lines += ["Cells: mean [95% interval, bootstrap over users, "
              f"{ev.config.resamples} resamples, seed {ev.config.seed}].", ""]
    for protocol, outcome in ev.outcomes.items():
        lines += [f"## {protocol}", "", *[f"- {n}" for n in outcome.notes], "",
                  "| model | Recall@20 | NDCG@20 | HitRate@20 | MRR | coverage@20 | cold items R@20 | cold users R@20 | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, tally in outcome.tallies.items():
            cells = [_cell(summary.get(protocol, name, m)) for m in HEADLINE]
            cells += [f"{outcome.coverage(name):.3f}"]
            cells += [_cell(summary.get(protocol, name, "recall@20", s)) for s in ("cold_items", "cold_users")]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {tally.seconds:.0f} |")
        cold = _slice_sizes(outcome)
        lines += ["", f"Slices: {cold}.", ""]
    goals = summary.goals()
    if goals:
        lines += ["## Goals", "", *[f"- {g.line()}" for g in goals], ""]
    return "\n".join(lines)


def _slice_sizes(outcome: Outcome) -> str:
    first = next(iter(outcome.tallies.values()), None)
    if first is None:
        return "none"
    return ", ".join(f"{s} {len(first.users[s]):,} records" for s in SLICES)


def _cell(est: Estimate | None) -> str:
    return "-" if est is None else f"{est.mean:.4f} [{est.low:.4f}, {est.high:.4f}]"


def to_json(summary: Summary, settings: dict[str, Any]) -> dict[str, Any]:
    ev = summary.evaluation
    doc: dict[str, Any] = {
        "dataset": ev.dataset.name, "description": ev.dataset.describe(), "encoders": ev.encoders,
        "refused_items": ev.refused_items, "seed": ev.config.seed, "resamples": ev.config.resamples,
        "als_params": ev.als_params, "als_validation": ev.als_validation, "hybrid_table": ev.hybrid_table,
        "rank_weights": ev.rank_weights, "rank_validation": ev.rank_validation, "skipped": ev.skipped,
        # What each protocol's engine ran with (tuned weights included), and the settings before tuning.
        "settings": ev.engine_settings or settings, "settings_before_tuning": settings, "protocols": {},
        "goals": [{"goal": g.text, "ratio": g.ratio, "low": g.low, "high": g.high, "target": g.target, "met": g.met,
                   "detail": g.detail} for g in summary.goals()],
    }
    for protocol, outcome in ev.outcomes.items():
        models: dict[str, Any] = {}
        for name, tally in outcome.tallies.items():
            models[name] = {
                "seconds": tally.seconds,
                "coverage@20": outcome.coverage(name),
                "slices": {
                    s: {m: vars(e) for m in METRICS if (e := summary.get(protocol, name, m, s)) is not None}
                    for s in SLICES
                },
            }
        doc["protocols"][protocol] = {"notes": outcome.notes, "models": models}
    return doc


def _styles(names: list[str]) -> dict[str, dict[str, Any]]:
    """A distinct colour per model (tab20 holds 20), and a line style per family: baselines dashed,
    content-only dotted, the engine's hybrids solid, the hybrid itself thickest."""
    import matplotlib

    palette = matplotlib.colormaps["tab20"].colors
    styles = {}
    for n, name in enumerate(names):
        family = "baseline" if name in COLLABORATIVE else "content" if name.startswith("content") else "engine"
        styles[name] = {
            "color": palette[(2 * n) % 20 + (2 * n) // 20],  # the ten strong colours first, then their light twins
            "linestyle": {"baseline": "--", "content": ":", "engine": "-"}[family],
            "marker": {"baseline": "s", "content": "^", "engine": "o"}[family],
            "linewidth": 2.8 if name == "hybrid" else 1.5,
            "label": name,
        }
    return styles


def _panels(names: list[str]) -> list[tuple[str, list[str]]]:
    baselines = [n for n in names if n in COLLABORATIVE]
    engine = [n for n in names if n not in COLLABORATIVE]
    return [(title, group) for title, group in (("baselines", baselines), ("the engine's variants", engine)) if group]


def plots(summary: Summary, out: Path) -> list[Path]:
    """Recall@K and NDCG@K against K per protocol; cumulative Recall@20 over the prequential replay.
    Baselines and the engine's variants are drawn in panels of their own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ev = summary.evaluation
    paths = []
    for protocol, outcome in ev.outcomes.items():
        styles = _styles(list(outcome.tallies))
        fig, axes = plt.subplots(1, 2, figsize=(13, 5))
        for ax, metric in zip(axes, ("recall", "ndcg"), strict=True):
            for name in outcome.tallies:
                ys = [summary.get(protocol, name, f"{metric}@{k}") for k in KS]
                if all(y is not None for y in ys):
                    ax.plot(KS, [y.mean for y in ys], markersize=4, **styles[name])  # type: ignore[union-attr]
            ax.set_xscale("log")
            ax.set_xticks(KS, [str(k) for k in KS])
            ax.set_xlabel("K")
            ax.set_ylabel(f"{metric.upper()}@K")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
                       title="dashed: baselines, dotted: content only, solid: engine", title_fontsize=7)
        fig.suptitle(f"{ev.dataset.name}, {protocol}")
        fig.tight_layout()
        paths.append(out / f"{protocol}-metric-vs-k.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    pre = ev.outcomes.get("prequential")
    if pre is not None:
        styles = _styles(list(pre.tallies))
        panels = _panels(list(pre.tallies))
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), sharey=True, squeeze=False)
        start = min((t.arrays("all")[2].min() for t in pre.tallies.values() if len(t.arrays("all")[2])), default=0.0)
        for ax, (title, names) in zip(axes[0], panels, strict=True):
            for name in names:
                _, values, times = pre.tallies[name].arrays("all")
                if not len(times):
                    continue
                order = np.argsort(times, kind="stable")
                hits = values[order, METRICS.index("recall@20")]
                cumulative = np.cumsum(hits) / np.arange(1, len(hits) + 1)
                style = {**styles[name], "marker": None}
                ax.plot((times[order] - start) / 86_400.0, cumulative, **style)
            ax.set_title(title)
            ax.set_xlabel("days into the test period")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[0][0].set_ylabel("Recall@20 of all events so far")
        fig.suptitle(f"{ev.dataset.name}, prequential replay over time (cumulative)")
        fig.tight_layout()
        paths.append(out / "prequential-over-time.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write(summary: Summary, out: Path, settings: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(summary) + "\n")
    (out / "report.json").write_text(json.dumps(to_json(summary, settings), indent=2) + "\n")
    return [out / "report.md", out / "report.json", *plots(summary, out)]
