"""Diagrams of the IR as DOT: what is drawn (``scopes``, ``edges``), how it looks
(``style``, ``labels``) and the DOT itself (``dot``). Rendering is ``udnet.backends.graphviz``."""
