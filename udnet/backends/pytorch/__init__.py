"""PyTorch backend: the IR as a standalone, readable nn.Module source file.

``codegen.emit_module`` is the entry point; docs/architecture.md lists the modules and
their jobs. The package itself imports none of them: the elaborator reads the helpers'
names (``udnet.reserved``) without importing the emitter.
"""
