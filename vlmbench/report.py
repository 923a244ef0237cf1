"""The readable terminal summary of a results document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from vlmbench.backend import inert_line

COUNTS = ("n_samples", "n_errors", "unparsed_rate", "refusal_rate")


def _ci(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return "few concepts"
    form = "+.3f" if signed else ".3f"
    return f"[{low:{form}}, {high:{form}}]"


def _value(stat: Mapping[str, Any] | None) -> str:
    return "-" if not stat else f"{stat['value']:.3f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    # Numbers stay as formatted (3 decimals, signed gaps): tabulate would re-format "0.500" as "0.5". Text
    # (task names and the like, which a run folder from elsewhere may spell with escape sequences) is inert.
    inert = [[inert_line(cell) or "" if isinstance(cell, str) else cell for cell in row] for row in rows]
    from tabulate import tabulate  # here: the report is the last thing a run does

    return tabulate(inert, headers=headers, disable_numparse=True)


def metric_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    """One row per task and metric: the headline (every sample counts) with its 95% CI and n, then
    the paper's form (unparsed answers and refusals left out) with its coverage."""
    rows = []
    for name, entry in results["tasks"].items():
        m = entry["metrics"]
        for metric in (k for k in m if k not in COUNTS and not k.endswith("_strict")):
            head, paper = m.get(f"{metric}_strict"), m.get(metric)
            rows.append(
                [
                    name,
                    metric,
                    _value(head),
                    _ci(head["ci_low"], head["ci_high"]) if head else "-",
                    head["n"] if head else 0,
                    _value(paper),
                    _rate(paper.get("coverage")) if paper else "-",
                    _rate(m["unparsed_rate"]),
                    _rate(m["refusal_rate"]),
                    m["n_errors"],
                ]
            )
    return rows


def gap_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    """One row per modality gap: text and image headlines, the pooled (paper's) gap and the paired one."""
    rows = []
    for gap in results["modality_gaps"].values():
        overall = gap["overall"]
        if not overall:
            continue
        paired = overall.get("paired") or {}
        rows.append(
            [
                f"{gap['text_task']} - {gap['image_task']}",
                gap["metric"],
                f"{overall['text']:.3f}",
                f"{overall['image']:.3f}",
                f"{overall['gap']:+.3f}",
                _ci(overall["ci_low"], overall["ci_high"], signed=True),
                f"{paired['gap']:+.3f}" if paired else "-",
                _ci(paired.get("ci_low"), paired.get("ci_high"), signed=True) if paired else "-",
                overall["n_concepts"],
            ]
        )
    return rows


def prompt_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    """Per multi-prompt task and headline metric: the value for each prompt, and their spread."""
    rows = []
    for name, entry in results["tasks"].items():
        for metric, spread in (entry.get("prompt_spread") or {}).items():
            if not metric.endswith("_strict"):
                continue
            values = " ".join(_value(summary.get(metric)) for _, summary in sorted(entry["by_prompt"].items(), key=lambda kv: int(kv[0])))
            rows.append([name, metric, values, f"{spread['min']:.3f}-{spread['max']:.3f}", f"{spread['sd']:.3f}"])
    return rows


def summary_table(results: Mapping[str, Any]) -> str:
    """Per-task metrics, modality gaps, per-prompt spread, judges, then which data ran."""
    parts = [
        _table(metric_rows(results), ["task", "metric", "value", "95% CI", "n", "paper", "coverage", "unparsed", "refusal", "errors"]),
        "value: every sample counts (unparsed, refusals and errors as not correct); paper: the study's form, over parsed answers only "
        "(coverage: the share of samples it counts); 95% CIs clustered by concept",
    ]
    gaps = gap_rows(results)
    if gaps:
        headers = ["modality gap", "metric", "text", "image", "gap", "95% CI", "paired gap", "95% CI", "concepts"]
        parts.append(_table(gaps, headers))
        parts.append("gap: text - image, each pooled over its items (the paper's definition); paired gap: the mean of per-concept differences")
    prompts = prompt_rows(results)
    if prompts:
        parts.append(_table(prompts, ["task", "metric", "per prompt (in the task's order)", "min-max", "sd"]))
    parts.extend(judges_tables(results))
    parts.extend(served_lines(results))
    parts.extend(reuse_lines(results))
    notes = sorted({f"{d['path']}: {d['note']}" if d.get("note") else d["path"] for entry in results["tasks"].values() for d in entry["datasets"]})
    parts.append("data: " + "; ".join(notes))
    return "\n\n".join(parts)


def _judge_label(judge: Mapping[str, Any]) -> str:
    """``judge (vVERSION)`` plus the judge model's name when it has one; a task's own scorer (judge ``rules``)
    is named too, as ``rules: safety (v3)``, since a plugin's scorer is read by rules of its own."""
    model = judge.get("model") if isinstance(judge.get("model"), Mapping) else {}
    detail = model.get("model") or model.get("pretrained") or model.get("checkpoint") or "" if model else ""
    name = f"{judge['judge']}: {judge['name']}" if judge.get("name") and judge["name"] != judge["judge"] else judge["judge"]
    return f"{name} (v{judge['version']}{', ' + str(detail) if detail else ''})"


def served_lines(results: Mapping[str, Any]) -> list[str]:
    """Which models the servers said answered (the model's, then each judge's), over every task, when any named one."""
    model: Counter[str] = Counter()
    judges: dict[str, Counter[str]] = {}
    for entry in results["tasks"].values():
        model.update(entry.get("served_models") or {})
        for judge in entry.get("judges", []):
            judges.setdefault(_judge_label(judge), Counter()).update(judge.get("served_models") or {})
    lines = [f"served by: {_served(model, 'answers')}"] if model else []
    lines += [f"{label} served by: {_served(counts, 'verdicts')}" for label, counts in sorted(judges.items()) if counts]
    return lines


def reuse_lines(results: Mapping[str, Any]) -> list[str]:
    """How many reused answers other versions produced than this run's (``provenance``), and what differed."""
    current = results.get("provenance") or {}
    others = {d: p for d, p in (results.get("reused_provenance") or {}).items() if p != current}
    counts: Counter[str] = Counter()
    for entry in results["tasks"].values():
        counts.update({d: n for d, n in (entry.get("reused_from") or {}).items() if d in others or d == "unknown"})
    if not counts:
        return []
    changes = sorted({change for p in others.values() if isinstance(p, Mapping) for change in _changes(p, current)})
    shown = ", ".join(changes[:4]) + (f" and {len(changes) - 4} more" if len(changes) > 4 else "")
    if any(not isinstance(p, Mapping) for p in others.values()):
        shown += ("; " if shown else "") + "some versions the store does not hold"
    unknown = counts.pop("unknown", 0)
    parts = []
    if counts:
        parts.append(f"{sum(counts.values()):,} were produced with other versions than this run's ({shown or 'other provenance fields'})")
    if unknown:
        parts.append(f"{unknown:,} have no versions in the store (stored before vlmbench kept them, or damaged)")
    see = "see reused_provenance in results.json; " if counts else ""
    return ["reused answers: " + "; ".join(parts) + f" ({see}`vlmbench cache clear --model NAME` lets them be asked again)"]


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name old -> new`` for each package, Python, platform or commit that differs between two provenances
    (each name and value as inert text: a provenance may come from someone else's store)."""
    before, after = _versions(old), _versions(new)
    return [
        f"{inert_line(name, 60)} {inert_line(before.get(name), 60)} -> {inert_line(after.get(name), 60)}"
        for name in sorted({*before, *after})
        if before.get(name) != after.get(name)
    ]


def _versions(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A provenance's packages, Python, platform and commit (the first ten characters), by name."""
    packages = provenance.get("packages")
    commit = provenance.get("git_commit")
    return {
        **({str(k): v for k, v in packages.items()} if isinstance(packages, Mapping) else {}),
        "python": provenance.get("python"),
        "platform": provenance.get("platform"),
        "commit": commit[:10] if isinstance(commit, str) else commit,
    }


SHOWN_SERVED = 5
"""Served models a line names; the rest are counted together (a server may name a different one each time)."""


def _served(counts: Mapping[str, int], what: str) -> str:
    """``name (N answers), ...``, most first, at most :data:`SHOWN_SERVED` of them; each name as text on one line,
    however the file spells it."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{inert_line(name)} ({n:,} {what})" for name, n in ranked[:SHOWN_SERVED]]
    rest = ranked[SHOWN_SERVED:]
    if rest:
        shown.append(f"and {len(rest):,} more ({sum(n for _, n in rest):,} {what})")
    return ", ".join(shown)


def judges_tables(results: Mapping[str, Any]) -> list[str]:
    """Which judge gave each task's numbers and, with several judges, their metrics and agreement."""
    parts = []
    headline = sorted({f"{_judge_label(j)}" for e in results["tasks"].values() for j in e.get("judges", []) if j.get("headline")})
    if headline:
        parts.append("judged by: " + "; ".join(headline) + " (headline)")
    rows = []
    for name, entry in results["tasks"].items():
        for pair, value in (entry.get("agreement") or {}).items():
            kappa = "-" if value["kappa"] is None else f"{value['kappa']:.3f}"
            rows.append([name, pair, value["n"], _rate(value["agreement"]), kappa])
    if rows:
        from tabulate import tabulate

        parts.append(tabulate(rows, headers=["task", "judges", "n", "agreement", "Cohen's kappa"]))
    return parts
