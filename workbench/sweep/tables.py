"""The papers' tables and figures from a sweep's rows.

- IJCV Fig. 6 (``paper-fig6``): per layer and C, the normalised inversion error and the classification
  consistency, mean ± std over images, seeds and restarts (``table.md``, ``fig6.png``);
- IJCV Fig. 7 (``paper-fig6`` too): the mean gradient-histogram intersection of each pre-image with its
  reference per layer and C, with the 95 % confidence interval of the mean (a column of ``table.md``,
  ``fig7.png``; :mod:`workbench.preimage.naturalness`);
- CVPR 2015 Table 3, Figs. 4 and 8 (``paper-cvpr2015``): the ‖Φ(x*) − Φ0‖ / N_Φ error in percent per
  layer and λ_TV, mean ± std of the errors as the paper's table gives them, the bold λ_TV of each layer
  (``table3.md``, ``table3.png``), and the pre-images per layer × λ_TV (``tv.png``).

Every figure is written at page width (PNG and PDF) and as ``-column.png`` and ``-slide.png``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from workbench.preimage.naturalness import mean_confidence_interval

from workbench.runs import atomic_path

#: The sizes every paper figure of a sweep is also written at (besides the page-wide PNG and PDF).
EXTRA_SIZES = ("column", "slide")


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
        s = samples.setdefault((layer, C), {"error": [], "consistency": [], "hist": []})
        per = row.get("per_restart") or {}
        errors = per.get("reconstruction_error") or ([row["reconstruction_error_mean"]]
                                                     if row.get("reconstruction_error_mean") is not None else [])
        s["error"] += [float(e) for e in errors]
        preds, ref = per.get("predictions"), row.get("reference_prediction")
        if preds and ref is not None:
            s["consistency"] += [float(p == ref) for p in preds]
        elif row.get("classification_consistency") is not None:
            s["consistency"].append(float(row["classification_consistency"]))
        s["hist"] += _per_restart(row, "gradient_histogram_intersection")
    table = {}
    for key, s in samples.items():
        e, es = _mean_std(s["error"])
        c, cs = _mean_std(s["consistency"])
        h, hci = mean_confidence_interval(s["hist"])
        table[key] = {"error": e, "error_std": es, "consistency": c, "consistency_std": cs, "n": len(s["error"]),
                      "hist": h, "hist_ci95": hci, "hist_n": len(s["hist"])}
    return layers, sorted(Cs), table


def _per_restart(row: dict[str, Any], name: str) -> list[float]:
    """A row's per-restart values of metric ``name`` (its mean where the list is missing), finite only."""
    values = (row.get("per_restart") or {}).get(name)
    if not values and row.get(f"{name}_mean") is not None:
        values = [row[f"{name}_mean"]]
    return [float(v) for v in values or [] if v is not None and math.isfinite(float(v))]


def write_fig6(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """table.md, table.csv and fig6.png/fig6.pdf in ``out``; returns their paths."""
    layers, Cs, table = fig6_table(rows)
    if not table:
        return []
    out = Path(out)
    header = "| layer | " + " | ".join(f"error C={C:g} | consistency C={C:g} | hist. ∩ C={C:g}" for C in Cs) + " |"
    lines = ["Normalised inversion error ‖Φ(x) − Φ0‖² / ‖Φ0‖² and classification consistency per layer "
             "(IJCV Fig. 6 / CVPR Table 3 layout), mean ± std over images, seeds and restarts; hist. ∩: the "
             "intersection of the gradient-magnitude histograms of pre-image and reference (IJCV Fig. 7), "
             "mean ± the half-width of its 95 % confidence interval.", "",
             header, "|" + "---|" * (1 + 3 * len(Cs))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "C", "error_mean", "error_std", "consistency_mean", "consistency_std", "n",
                     "hist_intersection_mean", "hist_intersection_ci95", "hist_n"])
    for layer in layers:
        cells = []
        for C in Cs:
            t = table.get((layer, C))
            if t is None:
                cells += ["–", "–", "–"]
                continue
            cells += [f"{t['error']:.3f} ± {t['error_std']:.3f}", f"{t['consistency']:.2f} ± {t['consistency_std']:.2f}",
                      _mean_ci(t["hist"], t["hist_ci95"])]
            writer.writerow([layer, C, t["error"], t["error_std"], t["consistency"], t["consistency_std"], t["n"],
                             t["hist"], t["hist_ci95"], t["hist_n"]])
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    paths = _write_table(out, "table", lines, buffer)
    return paths + fig6_figure(out, layers, Cs, table) + fig7_figure(out, layers, Cs, table)


def _mean_ci(mean: float, half: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.3f}" + ("" if math.isnan(half) else f" ± {half:.3f}")


def _save_sizes(out: Path, name: str, make) -> list[Path]:
    """``make(style)`` → a Figure, written as ``name``.png/.pdf at page width and ``name``-column.png,
    ``name``-slide.png (:data:`EXTRA_SIZES`)."""
    from workbench.export.render import write
    from workbench.export.style import FigureStyle

    paths = []
    page = FigureStyle("page")
    fig = make(page)
    for fmt in ("png", "pdf"):
        paths.append(out / f"{name}.{fmt}")
        with atomic_path(paths[-1]) as tmp:
            write(fig, tmp, fmt, page)
    for size in EXTRA_SIZES:
        style = FigureStyle(size)
        paths.append(out / f"{name}-{size}.png")
        with atomic_path(paths[-1]) as tmp:
            write(make(style), tmp, "png", style)
    return paths


def fig7_figure(out: Path, layers, Cs, table) -> list[Path]:
    """IJCV Fig. 7: the mean gradient-histogram intersection per layer, one line per C, with its 95 %
    confidence interval as a band; nothing when no cell has the metric (a sweep made before it)."""
    if not any(table.get((l, C), {}).get("hist_n") for l in layers for C in Cs):
        return []
    from workbench.export.plots import Series, line_figure

    series = [Series(f"C = {C:g}", [table.get((l, C), {}).get("hist", math.nan) for l in layers],
                     band=[table.get((l, C), {}).get("hist_ci95", math.nan) for l in layers]) for C in Cs]
    n = max(t.get("hist_n", 0) for t in table.values())
    return _save_sizes(Path(out), "fig7", lambda style: line_figure(
        series, x_labels=layers, style=style, y_range=(0.0, 1.02), ylabel="histogram intersection",
        title=f"Gradient-magnitude histograms of pre-image and reference (IJCV Fig. 7): mean and 95\u00a0% "
              f"confidence interval, up to {n} pre-images per point"))


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


def cvpr_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[float], dict[tuple[str, float], dict[str, Any]]]:
    """(layers in order, λ_TV values, {(layer, λ_TV): {error, error_std (of the errors, in %), consistency, n}})
    from a cvpr2015 sweep's rows: CVPR Table 3's ‖Φ(x*) − Φ0‖ / N_Φ in percent."""
    layers: list[str] = []
    lambdas: list[float] = []
    samples: dict[tuple[str, float], dict[str, list[float]]] = {}
    for row in rows:
        lam = row.get("lambda_tv") if row.get("lambda_tv") is not None else row.get("lambda_tv_used")
        if row.get("status") != "done" or lam is None:
            continue
        layer, lam = row["layer"], float(lam)
        layers += [layer] if layer not in layers else []
        lambdas += [lam] if lam not in lambdas else []
        s = samples.setdefault((layer, lam), {"error": [], "consistency": []})
        s["error"] += [100.0 * e for e in _per_restart(row, "reconstruction_error_nphi")]
        preds, ref = (row.get("per_restart") or {}).get("predictions"), row.get("reference_prediction")
        if preds and ref is not None:
            s["consistency"] += [float(p == ref) for p in preds]
    table = {}
    for key, s in samples.items():
        e, es = _mean_std(s["error"])
        c, _ = _mean_std(s["consistency"])
        table[key] = {"error": e, "error_std": es, "consistency": c, "n": len(s["error"])}
    return layers, sorted(lambdas), table


def _cell_metrics(out: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    from workbench.errors import UserError
    from workbench.runs import read_json

    path = Path(out) / "cells" / str(row.get("cell")) / "metrics.json"
    try:
        data = read_json(path) if path.is_file() else None
    except (UserError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bold_lambdas(out: Path, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each layer's bold λ_TV of CVPR Table 3 (``lambda_tv_preset`` of its cells' metrics)."""
    bold: dict[str, float] = {}
    for row in rows:
        if row.get("status") == "done" and row.get("layer") not in bold:
            value = (_cell_metrics(out, row) or {}).get("lambda_tv_preset")
            if isinstance(value, (int, float)):
                bold[row["layer"]] = float(value)
    return bold


def write_cvpr2015(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """table3.md, table3.csv, table3.png (CVPR Table 3) and tv.png (CVPR Figs. 4 and 8) in ``out``."""
    layers, lambdas, table = cvpr_table(rows)
    if not table:
        return []
    out = Path(out)
    bold = bold_lambdas(out, rows)
    lines = ["Inversion error ‖Φ(x*) − Φ0‖ / N_Φ in percent per layer and λ_TV with the CVPR 2015 formulation "
             "(CVPR Table 3), mean ± std of the errors over images, seeds and restarts (as the paper's table); "
             "in bold the layer's λ_TV chosen as the paper chose it (Table 3's bold values, by receptive field). "
             "Classification consistency in brackets (a model with a classifier).", "",
             "| λ_TV | " + " | ".join(layers) + " |", "|" + "---|" * (1 + len(layers))]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "lambda_tv", "error_percent_mean", "error_percent_std", "consistency", "n", "bold"])
    for lam in lambdas:
        cells = []
        for layer in layers:
            t = table.get((layer, lam))
            if t is None:
                cells.append("–")
                continue
            text = f"{t['error']:.1f} ± {t['error_std']:.1f}"
            is_bold = bold.get(layer) == lam
            cells.append((f"**{text}**" if is_bold else text)
                         + (f" ({t['consistency']:.2f})" if not math.isnan(t["consistency"]) else ""))
            writer.writerow([layer, lam, t["error"], t["error_std"], t["consistency"], t["n"], int(is_bold)])
        lines.append(f"| {lam:g} | " + " | ".join(cells) + " |")
    paths = _write_table(out, "table3", lines, buffer)
    from workbench.export.plots import Points, Series, line_figure

    series = [Series(f"λ_TV = {lam:g}", [table.get((l, lam), {}).get("error", math.nan) for l in layers],
                     band=[table.get((l, lam), {}).get("error_std", math.nan) for l in layers]) for lam in lambdas]
    marks = [(i, table[(l, bold[l])]["error"]) for i, l in enumerate(layers) if (l, bold.get(l)) in table]

    def points(style) -> list:  # a ring around the bold value of each layer
        return [Points([x for x, _ in marks], [y for _, y in marks], label="bold λ_TV (the paper's rule)",
                       colors=["none"] * len(marks), sizes=(style.line * 8) ** 2, edge=True)] if marks else []

    paths += _save_sizes(out, "table3", lambda style: line_figure(
        series, x_labels=layers, style=style, points=points(style), ylabel="‖Φ(x*) − Φ0‖ / N_Φ (%)",
        title="Inversion error per layer and λ_TV, CVPR 2015 formulation (CVPR Table 3): mean ± std"))
    return paths + tv_figure(out, rows, layers, lambdas)


def tv_figure(out: Path, rows: list[dict[str, Any]], layers: list[str], lambdas: list[float]) -> list[Path]:
    """CVPR Figs. 4 and 8: the first pre-image of the first image and seed per layer (rows) and λ_TV
    (columns), beside the reference, captioned with its N_Φ error."""
    from workbench.data.images import load_image
    from workbench.export.figures import FigureGrid

    first: dict[tuple[str, float], dict[str, Any]] = {}
    for row in rows:
        lam = row.get("lambda_tv") if row.get("lambda_tv") is not None else row.get("lambda_tv_used")
        if row.get("status") == "done" and lam is not None:
            first.setdefault((row["layer"], float(lam)), row)
    if not first:
        return []
    tiles, captions = [], []
    reference = None
    for layer in layers:
        line, notes = [], []
        for lam in lambdas:
            row = first.get((layer, lam))
            folder = Path(out) / "cells" / str(row["cell"]) if row else None
            image = _read_png(folder / "images" / "restart_1.png", load_image) if folder else None
            if reference is None and folder is not None:
                reference = _read_png(folder / "images" / "reference.png", load_image)
            line.append(image)
            errors = _per_restart(row, "reconstruction_error_nphi") if row else []
            notes.append(f"{100 * errors[0]:.1f} %" if errors else "")
        tiles.append([reference] + line)
        captions.append([""] + notes)
    grid = FigureGrid(tiles, row_labels=list(layers), col_labels=["reference"] + [f"λ_TV = {lam:g}" for lam in lambdas],
                      title="Pre-images with growing λ_TV, CVPR 2015 formulation (CVPR Figs. 4 and 8); "
                            "captions: ‖Φ(x*) − Φ0‖ / N_Φ", captions=captions)
    return _save_sizes(Path(out), "tv", grid.figure)


def _read_png(path: Path, reader):
    from workbench.errors import UserError

    try:
        return reader(path) if path.is_file() else None
    except (UserError, OSError, ValueError):  # a damaged tile is left blank: the table still has the numbers
        return None


def _write_table(out: Path, stem: str, lines: list[str], rows: io.StringIO) -> list[Path]:
    """``<stem>.md`` (the Markdown ``lines``) and ``<stem>.csv`` (the ``rows`` a csv writer wrote), each atomically."""
    paths = [out / f"{stem}.md", out / f"{stem}.csv"]
    for path, text in zip(paths, ("\n".join(lines) + "\n", rows.getvalue())):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths
