"""Reading a Graphviz SVG back: clusters, nodes, edges and table cells, with their geometry.

Geometry is in the SVG's own coordinates (y grows downwards), from the numbers of each
shape's points or path: enough to compare positions, whatever the renderer."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


class Picture:
    """Clusters, nodes and edges of a Graphviz SVG, by title, with their classes and texts."""

    def __init__(self, data: bytes | str):
        self.root = ET.fromstring(data.encode() if isinstance(data, str) else data)
        self.clusters: dict[str, tuple[set[str], list[str]]] = {}
        self.nodes: dict[str, tuple[set[str], list[str]]] = {}
        self.edges: list[tuple[str, str, set[str], list[str]]] = []
        self.boxes: dict[str, Box] = {}  # cluster or node title -> its outline's bounding box
        self.paths: list[tuple[str, str, list[tuple[float, float]]]] = []  # edge: points along its curve
        self.cells: dict[str, tuple[str, Box]] = {}  # table cell id -> (tooltip, box)
        for g in self.root.iter(f"{SVG}g"):
            classes = set((g.get("class") or "").split())
            title_el = g.find(f"{SVG}title")
            if title_el is None:
                continue
            title = title_el.text or ""
            texts = [t for t in ("".join(e.itertext()).strip() for e in g.iter(f"{SVG}text")) if t]
            if "cluster" in classes:
                self.clusters[title] = (classes, texts)
                self.boxes[title] = _box(g, outline_only=True)
            elif "node" in classes:
                self.nodes[title] = (classes, texts)
                self.boxes[title] = _box(g)
                for cell in g.iter(f"{SVG}g"):  # table cells with an id: <g id="a_ID"><a xlink:title=...>
                    cell_id = cell.get("id") or ""
                    if cell_id.startswith("a_") and not re.fullmatch(r"a_node\d+", cell_id):
                        a = cell.find(f"{SVG}a")
                        tip = "" if a is None else a.get(f"{XLINK}title") or ""
                        self.cells[cell_id[2:]] = (tip, _box(cell))
            elif "edge" in classes:
                tail, head = title.split("->")
                self.edges.append((tail, head, classes, texts))
                path = g.find(f"{SVG}path")
                if path is not None:
                    self.paths.append((tail, head, _curve(path.get("d", ""))))

    def cluster_label(self, path: str) -> str:
        return " ".join(self.clusters[f"cluster_{path}"][1])

    def node_texts(self) -> list[str]:
        return [" | ".join(t) for _, t in self.nodes.values()]

    def legend(self) -> list[str]:
        return next(t for c, t in self.nodes.values() if "legend" in c)

    def edges_of(self, kind: str) -> list[tuple[str, str]]:
        return [(a, b) for a, b, c, _ in self.edges if kind in c]

    def clusters_holding(self, node: str) -> set[str]:
        """Titles of the clusters whose box holds the centre of ``node``'s box."""
        x0, y0, x1, y1 = self.boxes[node]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return {c for c in self.clusters if _inside((cx, cy), self.boxes[c])}

    def foreign_crossings(self) -> list[tuple[str, str, str]]:
        """(tail, head, cluster) for every edge that runs through a cluster holding neither
        of its ends."""
        out = []
        for tail, head, points in self.paths:
            own = self.clusters_holding(tail) | self.clusters_holding(head)
            for c in set(self.clusters) - own:
                x0, y0, x1, y1 = self.boxes[c]
                inner = (x0 + 1, y0 + 1, x1 - 1, y1 - 1)
                if any(_inside(p, inner) for p in points):
                    out.append((tail, head, c))
        return out


def _box(g: ET.Element, outline_only: bool = False) -> Box:
    """Bounding box of the polygons and paths under ``g`` (the first one only, the
    outline, for a cluster: its label and nodes are drawn apart)."""
    xs: list[float] = []
    ys: list[float] = []
    shapes = [e for e in g.iter() if e.tag in (f"{SVG}polygon", f"{SVG}path", f"{SVG}ellipse")]
    for e in shapes[:1] if outline_only else shapes:
        if e.tag == f"{SVG}ellipse":
            cx, cy, rx, ry = (float(e.get(k)) for k in ("cx", "cy", "rx", "ry"))
            xs += [cx - rx, cx + rx]
            ys += [cy - ry, cy + ry]
            continue
        nums = [float(v) for v in NUMBER.findall(e.get("points") or e.get("d") or "")]
        xs += nums[0::2]
        ys += nums[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _curve(d: str, steps: int = 12) -> list[tuple[float, float]]:
    """Points along an edge's path ``M p0 C p1 p2 p3 p4 p5 p6 ...`` (cubic Beziers)."""
    nums = [float(v) for v in NUMBER.findall(d)]
    pts = list(zip(nums[0::2], nums[1::2]))
    out = [pts[0]]
    for i in range(1, len(pts) - 2, 3):
        (ax, ay), (bx, by), (cx, cy), (ex, ey) = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for k in range(1, steps + 1):
            t = k / steps
            u = 1 - t
            out.append(
                (
                    u**3 * ax + 3 * u * u * t * bx + 3 * u * t * t * cx + t**3 * ex,
                    u**3 * ay + 3 * u * u * t * by + 3 * u * t * t * cy + t**3 * ey,
                )
            )
    return out


def _inside(p: tuple[float, float], box: Box) -> bool:
    return box[0] < p[0] < box[2] and box[1] < p[1] < box[3]
