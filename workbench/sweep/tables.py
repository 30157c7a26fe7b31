"""The IJCV Fig. 6 / CVPR Table 3 layout from a sweep's rows: per layer and C, the normalised
inversion error and the classification consistency, mean ± std over images, seeds and restarts."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from workbench.runs import atomic_path


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def fig6_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[float], dict[tuple[str, float], dict[str, Any]]]:
    """(layers in order, C values, {(layer, C): {error, error_std, consistency, consistency_std, n}})."""
    layers: list[str] = []
    Cs: list[float] = []
    samples: dict[tuple[str, float], dict[str, list[float]]] = {}
    for row in rows:
        if row.get("status") != "done" or row.get("C") is None:
            continue
        layer, C = row["layer"], float(row["C"])
        if layer not in layers:
            layers.append(layer)
        if C not in Cs:
            Cs.append(C)
        s = samples.setdefault((layer, C), {"error": [], "consistency": []})
        per = row.get("per_restart") or {}
        errors = per.get("reconstruction_error") or ([row["reconstruction_error_mean"]]
                                                     if row.get("reconstruction_error_mean") is not None else [])
        s["error"] += [float(e) for e in errors]
        preds, ref = per.get("predictions"), row.get("reference_prediction")
        if preds and ref is not None:
            s["consistency"] += [float(p == ref) for p in preds]
        elif row.get("classification_consistency") is not None:
            s["consistency"].append(float(row["classification_consistency"]))
    table = {}
    for key, s in samples.items():
        e, es = _mean_std(s["error"])
        c, cs = _mean_std(s["consistency"])
        table[key] = {"error": e, "error_std": es, "consistency": c, "consistency_std": cs, "n": len(s["error"])}
    return layers, sorted(Cs), table


def write_fig6(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """table.md, table.csv and fig6.png/fig6.pdf in ``out``; returns their paths."""
    layers, Cs, table = fig6_table(rows)
    if not table:
        return []
    out = Path(out)
    header = "| layer | " + " | ".join(f"error C={C:g} | consistency C={C:g}" for C in Cs) + " |"
    lines = ["Normalised inversion error ‖Φ(x) − Φ0‖² / ‖Φ0‖² and classification consistency per layer "
             "(IJCV Fig. 6 / CVPR Table 3 layout), mean ± std over images, seeds and restarts.", "",
             header, "|" + "---|" * (1 + 2 * len(Cs))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "C", "error_mean", "error_std", "consistency_mean", "consistency_std", "n"])
    for layer in layers:
        cells = []
        for C in Cs:
            t = table.get((layer, C))
            if t is None:
                cells += ["–", "–"]
                continue
            cells += [f"{t['error']:.3f} ± {t['error_std']:.3f}", f"{t['consistency']:.2f} ± {t['consistency_std']:.2f}"]
            writer.writerow([layer, C, t["error"], t["error_std"], t["consistency"], t["consistency_std"], t["n"]])
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    paths = [out / "table.md", out / "table.csv"]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(buffer.getvalue())
    return paths + fig6_figure(out, layers, Cs, table)


def fig6_figure(out: Path, layers, Cs, table) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax_e, ax_c = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    x = list(range(len(layers)))
    for C in Cs:
        e = [table.get((l, C), {}).get("error", math.nan) for l in layers]
        es = [table.get((l, C), {}).get("error_std", math.nan) for l in layers]
        c = [table.get((l, C), {}).get("consistency", math.nan) for l in layers]
        line, = ax_e.plot(x, e, marker="o", ms=3, lw=1.4, label=f"C = {C:g}")
        ax_e.fill_between(x, [a - b for a, b in zip(e, es)], [a + b for a, b in zip(e, es)],
                          color=line.get_color(), alpha=0.15, lw=0)
        ax_c.plot(x, c, marker="o", ms=3, lw=1.4, color=line.get_color())
    for ax in (ax_e, ax_c):
        ax.grid(True, color="#dddddd", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    ax_e.set_ylabel("normalised error")
    ax_e.legend(frameon=False, fontsize=8)
    ax_c.set_ylabel("consistency")
    ax_c.set_ylim(-0.05, 1.05)
    ax_c.set_xticks(x, layers, rotation=60, fontsize=7)
    paths = [out / "fig6.png", out / "fig6.pdf"]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150)
    return paths
