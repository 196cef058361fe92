"""Cell diagrams (paper Figure 5): the DAG of a cell drawn with matplotlib.

``cell_graphs(arch)`` turns an architecture of any space into labelled
graphs (inputs, intermediate nodes, output, op edges); ``plot_cells(arch)``
lays them out left to right and routes the edges so their labels do not
overlap. No graphviz: matplotlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from nsas.errors import NsasError


def agg_figure(width: float, height: float) -> Figure:
    """A figure drawn on the Agg canvas (no display, no pyplot state)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig

@dataclass(frozen=True)
class CellGraph:
    """A cell as a DAG to draw left to right.

    Attributes:
        title: shown above the diagram.
        nodes: ``(id, label, kind, rank)``; kind is "input", "node" or "output";
            rank is the column (inputs 0, the output last).
        edges: ``(source id, target id, op)``; an empty op draws a plain grey
            edge (cell inputs, the concatenation or mean into the output).
    """

    title: str
    nodes: list[tuple[str, str, str, int]]
    edges: list[tuple[str, str, str]]


def cell_graphs(arch: Any) -> list[CellGraph]:
    """The cells of an architecture of any space, as graphs (DARTS CNN: normal, then reduction)."""
    if arch.space == "nb201":
        from nsas.spaces.nb201 import EDGES

        nodes = [(str(j), str(j), "input" if j == 0 else "output" if j == 3 else "node", j) for j in range(4)]
        edges = [(str(i), str(j), op) for (j, i), op in zip(EDGES, arch.ops) if op != "none"]
        return [CellGraph("NAS-Bench-201 cell", nodes, edges)]
    if hasattr(arch, "normal"):  # darts, darts-chain
        return [_darts_cell(arch, cell, title) for cell, title in (("normal", "normal cell"),
                                                                   ("reduce", "reduction cell"))]
    if arch.space == "darts-rnn":
        rank = {"0": 1}
        nodes = [("x", "$x_t$", "input", 0), ("h", "$h_{t-1}$", "input", 0), ("0", "0", "node", 1)]
        edges = [("x", "0", ""), ("h", "0", "")]
        for i, (op, j) in enumerate(arch.recurrent, start=1):
            rank[str(i)] = rank[str(j)] + 1
            nodes.append((str(i), str(i), "node", rank[str(i)]))
            edges.append((str(j), str(i), op))
        nodes.append(("out", "$h_t$", "output", max(rank.values()) + 1))
        edges += [(str(i), "out", "") for i in range(1, len(arch.recurrent) + 1)]
        return [CellGraph(f"recurrent cell ($h_t$ = mean of nodes 1-{len(arch.recurrent)})", nodes, edges)]
    raise NsasError(f"no cell diagram for architectures of space {arch.space!r} "
                    "(cells are drawn for nb201, darts, darts-chain and darts-rnn)")


def _darts_cell(arch: Any, cell: str, title: str) -> CellGraph:
    names = ["k-2", "k-1"] + [str(i) for i in range(len(getattr(arch, cell)))]
    rank = {"k-2": 0, "k-1": 0}
    nodes = [("k-2", "$c_{k-2}$", "input", 0), ("k-1", "$c_{k-1}$", "input", 0)]
    edges = []
    for i, node in enumerate(getattr(arch, cell)):
        rank[str(i)] = 1 + max(rank[names[j]] for _, j in node)
        nodes.append((str(i), str(i), "node", rank[str(i)]))
        edges += [(names[j], str(i), op) for op, j in node]
    nodes.append(("out", "$c_{k}$", "output", max(rank.values()) + 1))
    edges += [(str(i), "out", "") for i in range(len(getattr(arch, cell)))]  # concat of nodes 0..3
    return CellGraph(title, nodes, edges)


_DX, _DY = 3.0, 1.5  # column and row spacing (data units; 1 unit = _INCH inches)
_INCH = 0.75
_R = 0.3  # node circle radius; input/output boxes are _BOX wide and 2 _R high
_BOX = 0.95
_FILL = {"input": "#d9f0d3", "node": "#deebf7", "output": "#fff2cc"}
_RADS = (0.0, 0.3, -0.3, 0.5, -0.5, 0.75, -0.75)
_LABEL_AT = (0.5, 0.38, 0.62, 0.28, 0.72, 0.8)  # label positions along an edge
_LABEL_H = 0.4  # label box height


def _layout(graph: CellGraph) -> dict[str, np.ndarray]:
    """Positions: x by rank; within a rank, nodes ordered by the mean height of their sources."""
    pos: dict[str, np.ndarray] = {}
    sources: dict[str, list[str]] = {}
    for src, dst, _ in graph.edges:
        sources.setdefault(dst, []).append(src)
    for r in sorted({n[3] for n in graph.nodes}):
        column = [n[0] for n in graph.nodes if n[3] == r]
        if r > 0:  # stable sort: ties keep index order
            column.sort(key=lambda n: -np.mean([pos[s][1] for s in sources.get(n, []) if s in pos] or [0.0]))
        for k, node in enumerate(column):
            pos[node] = np.array([r * _DX, ((len(column) - 1) / 2 - k) * _DY])
    return pos


def _curve(p: np.ndarray, q: np.ndarray, rad: float, t: np.ndarray) -> np.ndarray:
    """Points of matplotlib's ``arc3,rad=rad`` quadratic Bezier from p to q (equal aspect)."""
    d = q - p
    c = (p + q) / 2 + rad * np.array([d[1], -d[0]])
    t = t[:, None]
    return (1 - t) ** 2 * p + 2 * (1 - t) * t * c + t ** 2 * q


def _label_width(op: str) -> float:
    """Approximate width of an edge label in data units (7.5 pt text)."""
    return 0.3 + len(op) * 7.5 * 0.6 / 72 / _INCH


def _hits(points: np.ndarray, centre: np.ndarray, width: float, height: float = _LABEL_H) -> int:
    """How many of ``points`` lie inside the box of ``width`` x ``height`` at ``centre``."""
    d = np.abs(np.atleast_2d(points) - centre)
    return int(np.sum((d[:, 0] < width / 2) & (d[:, 1] < height / 2)))


def crossings(a: np.ndarray, b: np.ndarray) -> int:
    """How many times polyline ``a`` crosses polyline ``b`` (proper crossings of their segments)."""
    p, r = a[:-1], np.diff(a, axis=0)
    q, s = b[:-1], np.diff(b, axis=0)
    cross = lambda u, v: u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]  # noqa: E731
    denom = cross(r[:, None], s[None])
    d = q[None] - p[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t, u = cross(d, s[None]) / denom, cross(d, r[:, None]) / denom
    return int(np.sum((denom != 0) & (t >= 0) & (t < 1) & (u >= 0) & (u < 1)))  # a vertex counts once


@dataclass
class _Drawn:
    """What earlier edges of a diagram occupy: their sampled points and label boxes."""

    curves: list[np.ndarray]
    labels: list[tuple[np.ndarray, float]]


def _route(p: np.ndarray, q: np.ndarray, others: list[tuple[np.ndarray, float]], drawn: _Drawn, op: str
           ) -> tuple[float, np.ndarray]:
    """A curvature for edge p -> q, and a place for its label, that avoid what is drawn.

    Candidates go from straight to strongly curved, each with the label at the
    middle or shifted along the edge; the first that touches no other node,
    label or edge (and crosses no drawn edge) wins, else the one with the fewest collisions.
    """
    t = np.linspace(0.1, 0.9, 33)
    best: tuple[float, float, np.ndarray] | None = None
    for rad in _RADS:
        pts = _curve(p, q, rad, t)
        cost = sum(_hits(pts, o, w + 0.3, 2 * _R + 0.3) for o, w in others)
        cost += sum(1.0 for m, w in drawn.labels if _hits(pts, m, w))
        cost += sum(1.5 * crossings(pts, c) for c in drawn.curves)  # crossing edges make labels ambiguous
        for where in (_LABEL_AT if op else (0.5,)):
            mid = _curve(p, q, rad, np.array([where]))[0]
            clash = 0.0
            if op:
                width = _label_width(op)
                clash += sum(2.0 for m, w in drawn.labels
                             if abs(m[0] - mid[0]) < (w + width) / 2 and abs(m[1] - mid[1]) < _LABEL_H)
                clash += sum(2.0 for o, w in others if _hits(mid, o, w + width + 0.1, 2 * _R + _LABEL_H))
                clash += sum(1.0 for c in drawn.curves if _hits(c, mid, width))
            if best is None or cost + clash < best[0]:
                best = (cost + clash, rad, mid)
            if cost + clash == 0:
                return rad, mid
    return best[1], best[2]


def _draw_cell(ax: Any, graph: CellGraph) -> None:
    pos = _layout(graph)
    patches = {}
    for node, label, kind, _ in graph.nodes:
        x, y = pos[node]
        if kind == "node":
            patch = Circle((x, y), _R, fc=_FILL[kind], ec="0.2", lw=1.0, zorder=3)
        else:
            patch = FancyBboxPatch((x - _BOX / 2, y - _R), _BOX, 2 * _R, boxstyle="round,pad=0.04",
                                   fc=_FILL[kind], ec="0.2", lw=1.0, zorder=3)
        ax.add_patch(patch)
        patches[node] = patch
        ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=4)
    drawn = _Drawn([], [])
    kinds = {node: kind for node, _, kind, _ in graph.nodes}
    extent = [np.array(list(pos.values()))]
    for src, dst, op in sorted(graph.edges, key=lambda e: e[2] == ""):  # labelled edges pick first
        p, q = pos[src], pos[dst]
        others = [(v, _BOX if kinds[k] != "node" else 2 * _R) for k, v in pos.items() if k not in (src, dst)]
        rad, mid = _route(p, q, others, drawn, op)
        ax.add_patch(FancyArrowPatch(p, q, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=11, patchA=patches[src], patchB=patches[dst],
                                     shrinkA=0, shrinkB=1, lw=1.1 if op else 0.7,
                                     color="0.15" if op else "0.68", zorder=2))
        extent.append(_curve(p, q, rad, np.linspace(0, 1, 9)))
        drawn.curves.append(_curve(p, q, rad, np.linspace(0.05, 0.95, 41)))
        if op:
            drawn.labels.append((mid, _label_width(op)))
            ax.text(mid[0], mid[1], op, ha="center", va="center", fontsize=7.5, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
    pts = np.vstack(extent)
    ax.set_xlim(pts[:, 0].min() - 0.8, pts[:, 0].max() + 0.8)
    ax.set_ylim(pts[:, 1].min() - 0.5, pts[:, 1].max() + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(graph.title, fontsize=10)


def plot_cells(arch: Any, *, title: str | None = None) -> Figure:
    """Paper Fig. 5: diagrams of an architecture's cells, side by side, laid out left to right."""
    graphs = cell_graphs(arch)
    fig = agg_figure(8.0, 3.0)
    grid = fig.add_gridspec(1, len(graphs))
    axes = [fig.add_subplot(grid[0, k]) for k in range(len(graphs))]
    for ax, graph in zip(axes, graphs):
        _draw_cell(ax, graph)
    # size the figure to the drawings (equal aspect: 1 data unit = _INCH inches)
    sizes = [(np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim())) for ax in axes]
    grid.set_width_ratios([w for w, _ in sizes])
    width = sum(w for w, _ in sizes) * _INCH + 0.2 * len(axes)
    height = max(h for _, h in sizes) * _INCH + 0.35 + 0.3 * bool(title)
    fig.set_size_inches(max(width, 4.0), max(height, 1.8))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
