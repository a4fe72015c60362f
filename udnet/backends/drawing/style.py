"""How a drawing looks: edge styles per connection kind, connection nodes, clusters, the legend."""

from __future__ import annotations

import graphviz

from udnet.ops import CONNECTIONS as OP_CONNECTIONS

#: The connections, in the op table's order.
CONNECTIONS = tuple(OP_CONNECTIONS)

# Edge kinds as drawn: the IR's kinds (a connection's style and meaning from the op
# table), plus "bus" for the segments of a dense buffer and the FPN's "topdown" and
# "lateral" sums.
EDGE_STYLE: dict[str, dict[str, str]] = {
    "sequence": {"color": "#4d4d4d", "penwidth": "1.1"},
    "bus": {"color": "#8fd19e", "penwidth": "7", "arrowhead": "none"},
    "topdown": {"color": "#b5367a", "penwidth": "2.4"},
    "lateral": {"color": "#2a9d8f", "penwidth": "1.8", "style": "dashed"},
    **{c.edge: c.edge_style for c in OP_CONNECTIONS.values()},
}
LEGEND = {
    "sequence": "sequence",
    "bus": "dense buffer (each layer reads, then appends)",
    "shared": "shared buffer (share-concat): one allocation, each layer reads a prefix, appends in place",
    "topdown": "top-down path: a coarser level upsampled into a sum (FPN)",
    "lateral": "lateral connection: a backbone feature into a top-down sum",
    **{c.edge: c.legend for c in OP_CONNECTIONS.values()},
}
# When several IR edges become one drawn edge, the most telling kind wins.
PRIORITY = ("gate", "product", "join", "residual", "topdown", "lateral", "slice", "concat", "bus", "sequence")

CONNECTION_NODE = {name: c.node for name, c in OP_CONNECTIONS.items()}
BLOCK_CLUSTER = {
    "style": "rounded,filled",
    "fillcolor": "#f6f8fc",
    "color": "#8a9bb8",
    "fontsize": "10",
    "labeljust": "l",
    "margin": "8",
}
GROUP_CLUSTER = {"style": "rounded,dashed", "color": "#9a9a9a", "fontsize": "10", "labeljust": "l", "margin": "8"}
NESTED_FILLS = ("#f6f8fc", "#eef2f9", "#e6ecf5", "#dfe6f1")

GRAPH_ATTR = {
    "fontname": "Helvetica",
    "fontsize": "11",
    "nodesep": "0.22",
    "ranksep": "0.28",
    "labeljust": "l",
    "margin": "0.1",
    "outputorder": "edgesfirst",
    "newrank": "true",
}
NODE_ATTR = {
    "shape": "box",
    "style": "rounded,filled",
    "fillcolor": "#f2f2f2",
    "fontname": "Helvetica",
    "fontsize": "10",
    "height": "0.3",
    "margin": "0.08,0.03",
    "penwidth": "0.8",
}
EDGE_ATTR = {"fontname": "Helvetica", "fontsize": "8", "arrowsize": "0.6"}


def legend_node(g: graphviz.Digraph, kinds: list[str], aggregates: dict, shared: bool = False) -> None:
    """One HTML-table node: a line drawn in each edge style present, and what it means
    (``shared``: the buses are the share-concat pass's buffers).

    A single node keeps the legend out of the ranks of the network, whatever its size."""
    rows = ['<tr><td colspan="2" align="left"><b>Legend</b></td></tr>']
    for k in kinds:
        st = EDGE_STYLE[k]
        if k == "bus":
            sample = f'<td width="40" height="7" fixedsize="true" bgcolor="{st["color"]}"></td>'
        else:
            width = max(1, round(float(st["penwidth"])))
            dash = f' style="{st["style"]}"' if st.get("style") in ("dashed", "dotted") else ""
            cell = 'width="40" height="8" fixedsize="true" sides="b"'
            sample = f'<td {cell} border="{width}" color="{st["color"]}"{dash}></td>'
        text = LEGEND["shared" if k == "bus" and shared else k]
        rows.append(f'<tr>{sample}<td align="left">{text}</td></tr>')
    if any(x.kind == "columns" for x in aggregates.values()):
        join = CONNECTION_NODE["join"]
        rows.append(
            f'<tr><td width="40" height="10" fixedsize="true" border="1" color="{join["color"]}" '
            f'bgcolor="{join["fillcolor"]}"></td><td align="left" balign="left">fractal join: mean of the columns '
            "under the bar;<br/>drop-path rates local / global</td></tr>"
        )
    if any(x.kind == "fold" for x in aggregates.values()):
        rows.append(
            '<tr><td width="40" height="14" fixedsize="true" border="1" color="#a08a4c" bgcolor="#fdf3d7">xN</td>'
            '<td align="left">N identical chained blocks, folded</td></tr>'
        )
    if any(x.kind == "collapsed" for x in aggregates.values()):
        rows.append(
            '<tr><td width="40" height="12" fixedsize="true" border="2" color="#5a6f96" bgcolor="#e4eaf6"></td>'
            '<td align="left">block collapsed (--depth)</td></tr>'
        )
    table = (
        '<<table border="1" cellborder="0" cellspacing="3" cellpadding="1" style="rounded" color="#9a9a9a">'
        + "".join(rows)
        + "</table>>"
    )
    g.node("legend", label=table, shape="plain", style="", fontsize="9", **{"class": "legend"})
