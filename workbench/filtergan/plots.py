"""Figures of the filter-GAN: filter sheets as numpy images, the MDS scatter and the loss plot with
matplotlib (:mod:`workbench.export`; no Qt)."""

from __future__ import annotations

import colorsys

import numpy as np


def channel_thirds(weight: np.ndarray) -> np.ndarray:
    """The paper's view of filters (Figure 2: "we summed one third of the original channels together"):
    filters (..., C_in, k, k) → (..., 3, k, k), the sums over the first, second and last third of
    the input channels (``np.array_split``: thirds of C_in, the first ones a channel longer where
    C_in is not a multiple of 3), to be read as red, green and blue. A filter with fewer than 3
    input channels is summed whole into all three (grey)."""
    w = np.asarray(weight, dtype=np.float32)
    if w.ndim < 3:
        raise ValueError(f"filters of shape (..., C_in, k, k) expected, not {w.shape}")
    axis = w.ndim - 3
    if w.shape[axis] < 3:
        return np.repeat(w.sum(axis, keepdims=True), 3, axis=axis)
    return np.stack([part.sum(axis) for part in np.array_split(w, 3, axis=axis)], axis=axis)


def thirds_groups(c_in: int) -> list[tuple[int, int]]:
    """The input channels [start, stop) that :func:`channel_thirds` sums into red, green and blue."""
    if c_in < 3:
        return [(0, c_in)] * 3
    bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(c_in), 3)])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def filter_image(weight: np.ndarray) -> np.ndarray:
    """One filter (C_in, k, k) as a (k, k, 3) image in [0, 1].

    As in the paper's Figure 2, input channels are summed in thirds (:func:`channel_thirds`); the
    three sums become the red, green and blue channels (a one-channel filter is grey). 0.5 is zero.
    """
    rgb = channel_thirds(weight)
    scale = float(np.abs(rgb).max()) or 1.0
    return np.ascontiguousarray((0.5 + 0.5 * rgb / scale).transpose(1, 2, 0))


def filter_sheet(rows: list[np.ndarray], channels: int = 16, cell: int = 18, gap: int = 2) -> np.ndarray:
    """Rows of filter sets (C_out, C_in, k, k) → an (H, W, 3) float image; one filter per cell.

    Every filter is scaled by the largest |value| of its column over all rows, so a column
    compares one output channel across filter sets.
    """
    sets = [np.asarray(r, dtype=np.float32)[:channels] for r in rows]
    n_cols = sets[0].shape[0]
    k = sets[0].shape[-1]
    rep = max(1, cell // k)
    size = k * rep
    out = np.ones((len(sets) * (size + gap) + gap, n_cols * (size + gap) + gap, 3), np.float32)
    for col in range(n_cols):
        thirds = [channel_thirds(s[col]) for s in sets]
        scale = max(float(np.abs(t).max()) for t in thirds) or 1.0
        for row, t in enumerate(thirds):
            img = (0.5 + 0.5 * t / scale).transpose(1, 2, 0)
            img = np.kron(img, np.ones((rep, rep, 1), np.float32))
            y, x = gap + row * (size + gap), gap + col * (size + gap)
            out[y:y + size, x:x + size] = img
    return out


def palette(n: int) -> np.ndarray:
    """n distinguishable colours (n, 3) uint8, golden-ratio hues at two lightness levels."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        light = 0.45 if i % 2 else 0.6
        out.append(colorsys.hls_to_rgb(h, light, 0.85))
    return (np.asarray(out) * 255).astype(np.uint8)


#: The loss plot's title (the run folder's losses.png and the window's export of the loss plot).
LOSS_TITLE = "filter-GAN losses (Algorithm 1)"


def mds_title(layer: str, n_real: int, samples: int) -> str:
    """The MDS figure's title (without the untrained mark: see ``model_caption``)."""
    return f"MDS of {layer} filters: {n_real} real, {samples} × {n_real} generated"


def mds_figure(coords: np.ndarray, real_index: np.ndarray, is_real: np.ndarray, *, title: str = "", style=None):
    """Scatter of MDS coordinates (sect. 5.2 (ii)) as a matplotlib Figure: generated filters as small
    dots coloured by their real filter, real filters as large outlined discs of the same colour."""
    from matplotlib.lines import Line2D

    from workbench.export.render import INK, new_figure, print_context, wrap
    from workbench.export.style import style_or_default

    style = style_or_default(style)
    coords = np.asarray(coords, dtype=np.float64)
    real_index = np.asarray(real_index)
    is_real = np.asarray(is_real, dtype=bool)
    colours = palette(int(real_index.max()) + 1) / 255.0
    with print_context(style):
        height = style.height or style.width * (0.92 if style.size == "column" else 0.62)
        fig = new_figure(style.width, height, layout="constrained")
        ax = fig.add_subplot()
        small, big = (style.line * 1.6) ** 2, (style.line * 4.2) ** 2
        gen = ~is_real
        ax.scatter(coords[gen, 0], coords[gen, 1], s=small, c=colours[real_index[gen]], linewidths=0, zorder=2,
                   rasterized=False)
        ax.scatter(coords[is_real, 0], coords[is_real, 1], s=big, c=colours[real_index[is_real]], edgecolors=INK,
                   linewidths=style.line * 0.7, zorder=3)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("MDS 1")
        ax.set_ylabel("MDS 2")
        grey = "#888888"
        handles = [Line2D([], [], linestyle="", marker="o", markersize=style.line * 4.2, markerfacecolor=grey,
                          markeredgecolor=INK, markeredgewidth=style.line * 0.7, label="real filter"),
                   Line2D([], [], linestyle="", marker="o", markersize=style.line * 1.6, markerfacecolor=grey,
                          markeredgewidth=0, label="generated filter (colour: its real filter)")]
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2 if style.size != "column" else 1,
                  borderaxespad=0.3, handletextpad=0.3)
        if title:
            fig.suptitle(wrap(title, style.width * 0.96, style.font * 1.15))
        return fig


def loss_figure(history: dict[str, list[float]], *, title: str = LOSS_TITLE, style=None):
    """The training losses D, G and Q per step (the run folder's ``losses.png``/``.pdf``)."""
    from workbench.export.plots import Series, line_figure

    return line_figure([Series("loss D", history["loss_D"]), Series("loss G", history["loss_G"]),
                        Series("loss Q", history["loss_Q"])], x=history["step"], title=title, xlabel="step",
                       ylabel="loss", style=style)


def filters_figure(real: np.ndarray, generated: np.ndarray, *, channels: list[int] | None = None, title: str = ""):
    """The paper's Figure 2 beside the real filters, as a :class:`~workbench.export.figures.FigureGrid`:
    the first row is the real filters ``real`` (C_out, C_in, k, k), each further row one generated
    filter set of ``generated`` (S, C_out, C_in, k, k); column j is output channel ``channels[j]``.
    Every filter is drawn in :func:`channel_thirds`' view (thirds of the input channels summed into
    red, green and blue), scaled by the largest |value| of its column, 0 at mid-grey: a column
    compares one output channel across the real and the generated sets."""
    from workbench.export.figures import FigureGrid

    real = np.asarray(real, dtype=np.float32)
    generated = np.asarray(generated, dtype=np.float32)
    views = channel_thirds(np.concatenate([real[None], generated]))            # (1 + S, C_out, 3, k, k)
    scale = np.abs(views).max(axis=(0, 2, 3, 4))                              # per column
    scale[scale == 0] = 1.0
    tiles = (0.5 + 0.5 * views / scale[None, :, None, None, None]).transpose(0, 1, 3, 4, 2)
    channels = list(range(real.shape[0])) if channels is None else list(channels)
    return FigureGrid([[tiles[r, j] for j in range(tiles.shape[1])] for r in range(tiles.shape[0])],
                      row_labels=["real"] + [f"z{s + 1}" for s in range(len(generated))],
                      col_labels=[str(c) for c in channels], title=title)
