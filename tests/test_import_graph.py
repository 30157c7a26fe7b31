"""No import circles among the core's modules (issue 21): every import that a module makes, at the top
or inside a function, read by grimp (which import-linter installs). A circle shows as its chain of
modules, e.g. ``workbench.export.render -> workbench.export.figures -> workbench.export.render``.

workbench.ui is counted too: since each dock gives its own figure (issue 21, item 3), widgets/plot_export
imports no dock and the window has no circle either.
"""

from __future__ import annotations

import grimp

#: Modules whose circles this test does not count (none: see the module's docstring).
EXCLUDED: tuple[str, ...] = ()


def import_cycles(graph: grimp.ImportGraph, excluded: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Each circle in ``graph`` once, as the chain of modules from its smallest name back to it.

    An import ``a -> b`` closes a circle where ``b`` reaches ``a`` again; modules named in
    ``excluded`` (and their submodules) are taken out of the graph first.
    """
    for module in [m for m in graph.modules if any(m == name or m.startswith(name + ".") for name in excluded)]:
        graph.remove_module(module)
    cycles: set[tuple[str, ...]] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                loop = (importer, *back)[:-1]
                start = loop.index(min(loop))
                cycles.add(loop[start:] + loop[:start])
    return sorted(cycles)


def _chains(cycles: list[tuple[str, ...]]) -> str:
    return "\n".join(" -> ".join((*cycle, cycle[0])) for cycle in cycles)


def test_the_core_has_no_import_cycle():
    cycles = import_cycles(grimp.build_graph("workbench", cache_dir=None), EXCLUDED)
    assert cycles == [], f"{len(cycles)} import circles:\n{_chains(cycles)}"


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_an_injected_cycle_is_found_with_its_chain():
    layered = [("pkg.cli", "pkg.api"), ("pkg.api", "pkg.runs"), ("pkg.api", "pkg.models"), ("pkg.models", "pkg.runs")]
    assert import_cycles(_graph(*layered)) == []
    # runs reading the version from the package, which imports the API: the circle issue 21 named
    cycles = import_cycles(_graph(*layered, ("pkg.runs", "pkg"), ("pkg", "pkg.api")))
    assert ("pkg", "pkg.api", "pkg.runs") in cycles
    assert "pkg -> pkg.api -> pkg.runs -> pkg" in _chains(cycles)
    # two modules importing each other (render <-> figures) is a circle of two
    assert import_cycles(_graph(("pkg.render", "pkg.figures"), ("pkg.figures", "pkg.render"))) == [
        ("pkg.figures", "pkg.render")]


def test_excluded_modules_and_their_circles_are_left_out():
    graph = _graph(("pkg.ui.dock", "pkg.ui.export"), ("pkg.ui.export", "pkg.ui.dock"), ("pkg.ui.dock", "pkg.core"))
    assert import_cycles(graph, ("pkg.ui",)) == []
    # a circle through an excluded module and a core one is not counted, but one outside it still is
    graph = _graph(("pkg.core", "pkg.ui.dock"), ("pkg.ui.dock", "pkg.core"), ("pkg.a", "pkg.b"), ("pkg.b", "pkg.a"))
    assert import_cycles(graph, ("pkg.ui",)) == [("pkg.a", "pkg.b")]
