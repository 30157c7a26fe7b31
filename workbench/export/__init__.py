"""Figures drawn in the core with matplotlib (never pyplot, never Qt): :mod:`.style` (the sizes),
:mod:`.render` (print settings, saving), :mod:`.figures` (image grids), :mod:`.plots` (line
plots), :mod:`.animation` (GIF and MP4). See docs/figures.md."""
