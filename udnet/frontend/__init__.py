"""Front end: source text to a typed AST with spans."""

from udnet.frontend.parser import parse, parse_expr

__all__ = ["parse", "parse_expr"]
