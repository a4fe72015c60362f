"""A small SVG-to-PDF writer for the SVG that Graphviz emits.

``graphviz-pure`` (the renderer udnet installs) writes SVG and PNG but not PDF. Graphviz's
SVG uses a handful of elements (path with M/C/L, polygon, polyline, ellipse, text) under one
transform, so this module turns it into a one-page vector PDF with the standard base-14
fonts (Helvetica, Times, Courier; nothing embedded). Graphviz lays text out with the
Helvetica/Times/Courier metrics, so the text fits the boxes as in the SVG.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zlib

from udnet.errors import UdnetError

SVG = "{http://www.w3.org/2000/svg}"

# Advance widths (1/1000 em) of Helvetica for the printable ASCII range 32..126 (AFM).
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip

_NAMED = {
    "black": (0, 0, 0), "white": (1, 1, 1), "red": (1, 0, 0), "green": (0, 0.5, 0), "blue": (0, 0, 1),
    "gray": (0.75, 0.75, 0.75), "grey": (0.75, 0.75, 0.75), "lightgrey": (0.83, 0.83, 0.83),
    "lightgray": (0.83, 0.83, 0.83), "yellow": (1, 1, 0), "orange": (1, 0.65, 0), "purple": (0.63, 0.13, 0.94),
}  # fmt: skip


def _color(value: str | None):
    """(r, g, b) in 0..1, or None for none/transparent."""
    if value is None:
        return (0.0, 0.0, 0.0)
    v = value.strip().lower()
    if v in ("none", "transparent", ""):
        return None
    if v.startswith("#") and len(v) in (7, 9):
        try:
            return tuple(int(v[i : i + 2], 16) / 255 for i in (1, 3, 5))
        except ValueError:
            return (0.0, 0.0, 0.0)
    if v.startswith("#") and len(v) == 4:
        return tuple(int(c * 2, 16) / 255 for c in v[1:])
    return _NAMED.get(v, (0.0, 0.0, 0.0))


def _font(family: str, weight: str | None, style: str | None) -> str:
    fam = (family or "").lower()
    bold = weight in ("bold", "bolder", "600", "700", "800", "900")
    italic = style in ("italic", "oblique")
    if "courier" in fam or "mono" in fam:
        base, suffix = (
            "Courier",
            ("-BoldOblique" if bold and italic else "-Bold" if bold else "-Oblique" if italic else ""),
        )
    elif "times" in fam or (fam.startswith("serif")):
        base = "Times"
        suffix = "-BoldItalic" if bold and italic else "-Bold" if bold else "-Italic" if italic else "-Roman"
    else:
        base, suffix = (
            "Helvetica",
            ("-BoldOblique" if bold and italic else "-Bold" if bold else "-Oblique" if italic else ""),
        )
    return base + suffix


def _text_width(text: str, font: str, size: float) -> float:
    if font.startswith("Courier"):
        return 0.6 * size * len(text)
    w = sum(_HELVETICA[ord(c) - 32] if 32 <= ord(c) <= 126 else 556 for c in text)
    scale = 1.0 if font.startswith("Helvetica") else 0.92  # Times runs narrower than Helvetica
    if "Bold" in font:
        scale *= 1.06
    return w * size * scale / 1000


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_TOKEN = re.compile(r"[MmLlCcHhVvZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _f(x: float) -> str:
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _path_ops(d: str) -> list[str]:
    """SVG path data (the absolute/relative M, L, H, V, C, Z that Graphviz writes) -> PDF ops."""
    toks = _TOKEN.findall(d)
    ops: list[str] = []
    i, cmd = 0, "M"
    x = y = sx = sy = 0.0

    def nums(k: int) -> list[float]:
        nonlocal i
        vals = [float(t) for t in toks[i : i + k]]
        if len(vals) < k or any(t.isalpha() for t in toks[i : i + k]):
            raise ValueError("short path")
        i += k
        return vals

    while i < len(toks):
        if toks[i].isalpha():
            cmd = toks[i]
            i += 1
            if cmd in "Zz":
                ops.append("h")
                x, y = sx, sy
                continue
        rel = cmd.islower()
        c = cmd.upper()
        if c == "M":
            px, py = nums(2)
            x, y = (x + px, y + py) if rel else (px, py)
            sx, sy = x, y
            ops.append(f"{_f(x)} {_f(y)} m")
            cmd = "l" if rel else "L"  # further pairs are line-tos
        elif c == "L":
            px, py = nums(2)
            x, y = (x + px, y + py) if rel else (px, py)
            ops.append(f"{_f(x)} {_f(y)} l")
        elif c == "H":
            (px,) = nums(1)
            x = x + px if rel else px
            ops.append(f"{_f(x)} {_f(y)} l")
        elif c == "V":
            (py,) = nums(1)
            y = y + py if rel else py
            ops.append(f"{_f(x)} {_f(y)} l")
        elif c == "C":
            v = nums(6)
            if rel:
                v = [v[0] + x, v[1] + y, v[2] + x, v[3] + y, v[4] + x, v[5] + y]
            ops.append(" ".join(_f(t) for t in v) + " c")
            x, y = v[4], v[5]
        else:
            raise ValueError(f"path command {cmd}")
    return ops


def _points(value: str) -> list[tuple[float, float]]:
    vals = [float(t) for t in _NUM.findall(value or "")]
    return list(zip(vals[0::2], vals[1::2]))


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> list[str]:
    k = 0.5522847498
    return [
        f"{_f(cx + rx)} {_f(cy)} m",
        f"{_f(cx + rx)} {_f(cy + k * ry)} {_f(cx + k * rx)} {_f(cy + ry)} {_f(cx)} {_f(cy + ry)} c",
        f"{_f(cx - k * rx)} {_f(cy + ry)} {_f(cx - rx)} {_f(cy + k * ry)} {_f(cx - rx)} {_f(cy)} c",
        f"{_f(cx - rx)} {_f(cy - k * ry)} {_f(cx - k * rx)} {_f(cy - ry)} {_f(cx)} {_f(cy - ry)} c",
        f"{_f(cx + k * rx)} {_f(cy - ry)} {_f(cx + rx)} {_f(cy - k * ry)} {_f(cx + rx)} {_f(cy)} c",
        "h",
    ]


_UNITS = {"pt": 1.0, "px": 0.75, "in": 72.0, "cm": 72 / 2.54, "mm": 72 / 25.4, "pc": 12.0}


def _length(value: str | None, default: float = 0.0) -> float:
    """An SVG length in points (a bare number is in px)."""
    m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(pt|px|in|cm|mm|pc)?\s*", value or "")
    if not m:
        return default
    return float(m.group(1)) * _UNITS[m.group(2) or "px"]


def svg_to_pdf(svg: bytes | str) -> bytes:
    """Convert Graphviz SVG output into a single-page PDF."""
    try:
        root = ET.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    except ET.ParseError as e:
        raise UdnetError(f"cannot convert the diagram to PDF: the SVG does not parse ({e})") from None
    vb = [float(t) for t in _NUM.findall(root.get("viewBox", ""))]
    width = _length(root.get("width"), vb[2] if len(vb) == 4 else 0)
    height = _length(root.get("height"), vb[3] if len(vb) == 4 else 0)
    if len(vb) != 4 or vb[2] <= 0 or vb[3] <= 0:
        vb = [0.0, 0.0, width, height]
    if width <= 0 or height <= 0:
        raise UdnetError("cannot convert the diagram to PDF: the SVG has no size")

    fonts: dict[str, str] = {}
    out: list[str] = [
        # SVG user space (y down, viewBox) -> PDF page space (y up, points)
        f"1 0 0 -1 0 {_f(height)} cm",
        f"{width / vb[2]:.6f} 0 0 {height / vb[3]:.6f} {_f(-vb[0] * width / vb[2])} {_f(-vb[1] * height / vb[3])} cm",
        "1 j 1 J",
    ]

    def style(el, inherited: dict) -> dict:
        st = dict(inherited)
        for key in (
            "fill",
            "stroke",
            "stroke-width",
            "stroke-dasharray",
            "font-family",
            "font-size",
            "font-weight",
            "font-style",
            "text-anchor",
        ):
            if el.get(key) is not None:
                st[key] = el.get(key)
        for part in (el.get("style") or "").split(";"):
            if ":" in part:
                k, v = part.split(":", 1)
                st[k.strip()] = v.strip()
        return st

    def paint(ops: list[str], st: dict, closed: bool) -> None:
        fill = _color(st.get("fill", "black")) if closed else None
        stroke = _color(st.get("stroke", "none"))
        if not ops or (fill is None and stroke is None):
            return
        out.append("q")
        if fill is not None:
            out.append("{} {} {} rg".format(*(_f(c) for c in fill)))
        if stroke is not None:
            out.append("{} {} {} RG".format(*(_f(c) for c in stroke)))
            out.append(f"{_f(float(st.get('stroke-width', '1') or 1))} w")
            dash = [float(t) for t in _NUM.findall(st.get("stroke-dasharray") or "")]
            if dash:
                out.append("[" + " ".join(_f(t) for t in dash) + "] 0 d")
        out.extend(ops)
        out.append("B" if fill is not None and stroke is not None else "f" if fill is not None else "S")
        out.append("Q")

    def text(el, st: dict) -> None:
        content = "".join(el.itertext())
        if not content.strip():
            return
        size = float(st.get("font-size", "14") or 14)
        font = _font(st.get("font-family", "Times"), st.get("font-weight"), st.get("font-style"))
        tag = fonts.setdefault(font, f"F{len(fonts) + 1}")
        x, y = float(el.get("x", "0")), float(el.get("y", "0"))
        anchor = st.get("text-anchor", "start")
        if anchor in ("middle", "end"):
            w = _text_width(content, font, size)
            x -= w / 2 if anchor == "middle" else w
        fill = _color(st.get("fill", "black")) or (0.0, 0.0, 0.0)
        out.append("BT")
        out.append("{} {} {} rg".format(*(_f(c) for c in fill)))
        out.append(f"/{tag} {_f(size)} Tf")
        out.append(f"1 0 0 -1 {_f(x)} {_f(y)} Tm")
        out.append(_pdf_string(content).decode("latin-1") + " Tj")
        out.append("ET")

    def walk(el, inherited: dict) -> None:
        tag = el.tag.replace(SVG, "")
        if tag in ("title", "desc", "metadata", "defs", "style"):
            return
        st = style(el, inherited)
        if tag in ("g", "svg", "a"):
            pushed = False
            tr = el.get("transform")
            if tr:
                out.append("q")
                pushed = True
                for name, args in re.findall(r"(\w+)\s*\(([^)]*)\)", tr):
                    v = [float(t) for t in _NUM.findall(args)]
                    if name == "translate" and v:
                        out.append(f"1 0 0 1 {_f(v[0])} {_f(v[1] if len(v) > 1 else 0)} cm")
                    elif name == "scale" and v:
                        out.append(f"{v[0]:.6f} 0 0 {(v[1] if len(v) > 1 else v[0]):.6f} 0 0 cm")
                    elif name == "matrix" and len(v) == 6:
                        out.append(" ".join(f"{t:.6f}" for t in v) + " cm")
                    # rotate(0) is all Graphviz writes; other rotations are not expected
            for child in el:
                walk(child, st)
            if pushed:
                out.append("Q")
        elif tag == "path":
            try:
                ops = _path_ops(el.get("d", ""))
            except ValueError:
                return
            paint(ops, st, closed=True)
        elif tag in ("polygon", "polyline"):
            pts = _points(el.get("points", ""))
            if len(pts) < 2:
                return
            ops = [f"{_f(pts[0][0])} {_f(pts[0][1])} m"] + [f"{_f(x)} {_f(y)} l" for x, y in pts[1:]]
            if tag == "polygon":
                ops.append("h")
            paint(ops, st, closed=tag == "polygon")
        elif tag == "ellipse":
            cx, cy = float(el.get("cx", "0")), float(el.get("cy", "0"))
            rx, ry = float(el.get("rx", "0")), float(el.get("ry", "0"))
            paint(_ellipse(cx, cy, rx, ry), st, closed=True)
        elif tag == "text":
            text(el, st)

    walk(root, {"fill": "black", "stroke": "none"})
    content = zlib.compress("\n".join(out).encode("latin-1"), 6)

    objects: list[bytes] = []
    font_ids = {font: 5 + i for i, font in enumerate(fonts)}
    font_dict = " ".join(f"/{tag} {font_ids[font]} 0 R" for font, tag in fonts.items())
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    objects.append(
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_f(width)} {_f(height)}] "
        f"/Resources << /Font << {font_dict} >> >> /Contents 4 0 R >>".encode()
    )
    objects.append(f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode() + content + b"\nendstream")
    for font in fonts:
        widths = ""
        if font == "Helvetica":  # pin the metrics Graphviz laid the text out with
            widths = " /FirstChar 32 /LastChar 126 /Widths [" + " ".join(map(str, _HELVETICA)) + "]"
        objects.append(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding{widths} >>".encode()
        )

    pdf = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(pdf))
        pdf += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        pdf += f"{off:010d} 00000 n \n".encode()
    pdf += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(pdf)
