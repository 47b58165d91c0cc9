"""The Markdown of the tables stage-1 report.

Rendered to HTML and JSON by :func:`mlestar.utils.report.write_report`.
"""

from __future__ import annotations

from typing import Any

MAX_COLUMN_ROWS = 200  # column-table rows; analysis.json has every column


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are escaped of pipes, floats shown to 4 significant digits."""
    def cell(value: Any) -> str:
        text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(name: str, analysis: dict[str, Any], recs: dict[str, Any]) -> str:
    """The whole report: overview, findings, columns, duplicates, target, correlation, drift, leakage, advice."""
    parts = [f"# Situation analysis: {name}", _overview(analysis), _findings(analysis["findings"]),
             _columns(analysis["columns"]), _duplicates(analysis["duplicates"]), _target(analysis),
             _correlation(analysis["correlation"]), _drift(analysis["adversarial"]), _leakage(analysis["leakage"]),
             _recommendations(recs), _splits(analysis)]
    return "\n\n".join(parts) + "\n"


def _overview(analysis: dict[str, Any]) -> str:
    sizes = analysis["splits"]
    samples = analysis["samples"]
    return (f"Task **{analysis['task']}**, target `{analysis['target_column']}`; {analysis['num_features']} feature "
            f"column(s) of {len(analysis['columns'])}. Rows: train {sizes['train']:,}, validation {sizes['val']:,}, "
            f"test {sizes['test']:,}. Missing cells among the features: {analysis['missing_fraction']:.2%}.\n\n"
            "Profiles, duplicates and outlier counts cover every training row (train + validation). "
            f"Sampled (seeded): value shares and IQR bounds and plots on {samples['profile']:,} rows, mutual "
            f"information on {samples['correlation']:,}, leakage probes on {samples['leakage']:,}, adversarial "
            f"validation on {samples['adversarial_train']:,} training + {samples['adversarial_test']:,} test rows.")


def _findings(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "## Findings\n\nNo findings."
    rows = [[f["grade"], f["check"], f["message"], f["count"], ", ".join(map(str, f["items"][:5]))]
            for f in findings]
    return "## Findings\n\n" + markdown_table(["grade", "check", "finding", "count", "examples"], rows)


def _columns(columns: dict[str, dict[str, Any]]) -> str:
    rows = [[n, c["kind"], c["role"], f"{c['missing']:.1%}", c["distinct"], f"{c['top_share']:.1%}",
             "constant" if c["constant"] else "near-constant" if c["near_constant"] else "",
             c.get("outliers", "")] for n, c in list(columns.items())[:MAX_COLUMN_ROWS]]
    more = f"\n\n({len(columns) - MAX_COLUMN_ROWS} more in analysis.json)" if len(columns) > MAX_COLUMN_ROWS else ""
    return ("## Columns\n\n`distinct` counts the loaded file; `top value` is the share of the most common value; "
            "outliers lie beyond 1.5 IQR of the quartiles.\n\n"
            + markdown_table(["column", "kind", "role", "missing", "distinct", "top value", "constancy", "outliers"],
                             rows) + more + "\n\n![column distributions](column_distributions.png)")


def _duplicates(dupes: dict[str, Any]) -> str:
    columns = ", ".join(f"`{d}` = `{k}`" for d, k in dupes["columns"]) or "none"
    return (f"## Duplicates\n\n- duplicate training rows: {dupes['rows']['count']:,} ({dupes['rows']['share']:.2%})\n"
            f"- test rows identical to a training row: {dupes['test_in_train']['count']:,} "
            f"({dupes['test_in_train']['share']:.2%})\n- identical columns: {columns}")


def _target(analysis: dict[str, Any]) -> str:
    target = analysis["target"]
    if "class_counts" in target:
        rows = [[name, *(target["class_counts"][s][i] for s in ("train", "val", "test"))]
                for i, name in enumerate(target["class_names"])]
        body = (f"Imbalance ratio (largest/smallest training class): {target['imbalance_ratio']:.2f}.\n\n"
                + markdown_table(["class", "train", "val", "test"], rows))
    else:
        body = (f"Skewness {target['skew']:.3f}; min {target['min']:.4g}, median {target['median']:.4g}, "
                f"mean {target['mean']:.4g}, max {target['max']:.4g}, std {target['std']:.4g}.")
    return f"## Target\n\n{body}\n\n![target distribution](target_distribution.png)"


def _correlation(corr: dict[str, Any]) -> str:
    top = list(corr["scores"].items())[:10]
    listed = ", ".join(f"`{n}` {v:.3f}" for n, v in top) or "no feature columns"
    return (f"## Correlation with the target\n\nMutual information (nats; scikit-learn's kNN estimator, categories "
            f"as discrete values) on {corr['rows']:,} rows. Highest: {listed}.\n\n"
            "![target correlation](target_correlation.png)")


def _drift(adv: dict[str, Any]) -> str:
    if adv["auc"] is None:
        return "## Train/test drift\n\nAdversarial validation was skipped (too few rows or no features)."
    return (f"## Train/test drift\n\nA LightGBM classifier told test rows from training rows with "
            f"cross-validated ROC AUC **{adv['auc']:.3f}** (0.5: no drift; >= 0.7 warns; >= 0.9 is strong) on "
            f"{adv['rows']['train']:,} training and {adv['rows']['test']:,} test rows. Top columns by gain: "
            + ", ".join(f"`{n}` {s:.0%}" for n, s in list(adv["importance"].items())[:5])
            + ".\n\n![adversarial importance](adversarial_importance.png)")


def _leakage(leak: dict[str, Any]) -> str:
    rows = [[s["column"], s["role"], s["metric"], s["score"], s["spearman"], kind]
            for kind, group in (("leak", leak["leaks"]), ("informative id", leak["informative_ids"])) for s in group]
    bars = leak["thresholds"]
    table = markdown_table(["column", "role", "metric", "score", "Spearman", "suspect"], rows) if rows else "None."
    return (f"## Leakage suspects\n\nEach column alone predicts the target out of fold (3 folds, {leak['rows']:,} "
            f"rows): a depth-8 tree for numbers and dates, per-value shares for categories and string ids. A "
            f"score >= {bars['leak']} is a leak suspect (blocking for a feature); an id-like column scoring "
            f">= {bars['id']} or with |Spearman| >= {bars['id_spearman']} carries target information.\n\n{table}")


def _recommendations(recs: dict[str, Any]) -> str:
    drops = "\n".join(f"  - `{d['column']}`: {d['reason']}" for d in recs["drop_columns"]) or "  - none"
    high = ", ".join(f"`{h['column']}` ({h['distinct']})" for h in recs["high_cardinality"]) or "none"
    return (f"## Recommendations\n\n- **drop columns**:\n{drops}\n"
            f"- **class weighting**: {recs['class_weighting']['choice']} ({recs['class_weighting']['reason']})\n"
            f"- **target transform**: {recs['target_transform']['choice']} ({recs['target_transform']['reason']})\n"
            f"- **high-cardinality categoricals**: {high}\n"
            f"- **drift columns**: {', '.join(recs['drift_columns']) or 'none'}\n"
            f"- **constant columns**: {', '.join(recs['constant_columns']) or 'none'}")


def _splits(analysis: dict[str, Any]) -> str:
    notes = "\n".join(f"- {note}" for note in analysis["notes"]) or "- (none)"
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in analysis["seconds"].items())
    return f"## Splits\n\n{notes}\n\n## Timing\n\n{timing}"
