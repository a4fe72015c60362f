"""udnet: a compiler for deep-network topologies."""
__version__ = "0.1.0"
