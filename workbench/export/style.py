"""What size a figure is made at: the one typed source of the figure options (no matplotlib, no torch).

A :class:`FigureStyle` is a paper column (3.5 in wide), a full page width (7 in) or a 16:9
slide (13.33 × 7.5 in, PowerPoint's and Keynote's widescreen page), with fonts and line
widths that read at that size when printed or projected, and a PNG resolution. The CLI's
``--figure-size`` and ``--figure-dpi`` are its fields (``workbench.cli.common``), the window's
export dialogs offer the same choices, and every job that writes figures takes one
(``figure=FigureStyle(...)``; ``None`` is the default style). Nothing here is global: a
style is passed to the code that draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import option
from workbench.errors import UserError

#: The figure sizes, in the order the window offers them.
SIZES = ("column", "page", "slide")

#: What each size is, for help texts and the export dialogs.
SIZE_LABELS = {"column": "paper column (3.5 in)", "page": "full page width (7 in)",
               "slide": "16:9 slide (13.33 × 7.5 in)"}

_WIDTH = {"column": 3.5, "page": 7.0, "slide": 40 / 3}
_PLOT_HEIGHT = {"column": 2.5, "page": 3.6, "slide": 7.5}
_FONT = {"column": 7.0, "page": 9.0, "slide": 18.0}        # points: a paper's caption size; a slide's body text
_LINE = {"column": 1.0, "page": 1.3, "slide": 2.6}         # points
_DPI = {"column": 300, "page": 300, "slide": 144}          # a slide at 144 dpi is 1920 × 1080 pixels
_LABEL_CHARS = {"column": 16, "page": 22, "slide": 26}     # longest axis label before it is elided

MAX_DPI = 1200


@dataclass(frozen=True)
class FigureStyle:
    size: str = option("page", "figure size: column (a paper column, 3.5 in wide), page (a full page width, "
                       "7 in) or slide (16:9, 13.33 x 7.5 in)", flag="--figure-size", choices=SIZES,
                       metavar="{column,page,slide}")
    dpi: int | None = option(None, "resolution of the PNG figures in dots per inch (default 300; 144 for a "
                             "slide, 1920 x 1080 pixels)", flag="--figure-dpi", metavar="DPI")
    title: str | None = option(None, "the title of the result grid (default: the model's name · layer · method; "
                               "an empty string leaves it out)", flag="--figure-title", metavar="TEXT")
    no_captions: bool = option(False, "leave out the captions under the tiles (class and metric)",
                               flag="--figure-no-captions")

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise UserError(f"unknown figure size '{self.size}': use {', '.join(SIZES)}")
        if self.dpi is not None and (isinstance(self.dpi, bool) or not isinstance(self.dpi, int)
                                     or not 20 <= self.dpi <= MAX_DPI):
            raise UserError(f"--figure-dpi must be a whole number from 20 to {MAX_DPI} (got {self.dpi!r})")

    @property
    def width(self) -> float:
        """Figure width in inches."""
        return _WIDTH[self.size]

    @property
    def slide(self) -> bool:
        return self.size == "slide"

    @property
    def height(self) -> float | None:
        """The fixed height of a slide (16:9); None where the content decides (a column, a page)."""
        return 7.5 if self.slide else None

    @property
    def plot_height(self) -> float:
        """Height in inches of a line plot or scatter at this size."""
        return _PLOT_HEIGHT[self.size]

    @property
    def font(self) -> float:
        """Base font size in points (tick labels and legends a little smaller, titles a little larger)."""
        return _FONT[self.size]

    @property
    def line(self) -> float:
        """Line width in points of a plotted curve."""
        return _LINE[self.size]

    @property
    def png_dpi(self) -> int:
        return self.dpi if self.dpi is not None else _DPI[self.size]

    @property
    def label_chars(self) -> int:
        return _LABEL_CHARS[self.size]


def style_or_default(style: FigureStyle | None) -> FigureStyle:
    return style if style is not None else FigureStyle()
