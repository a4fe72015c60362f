"""Helpers of the connections (the fractal join, shared concat buffers), copied into an
emitted model.py when it uses them (it imports torch only). Each is a module of its own
in this folder, read as text (helper_text.py); the ops' helpers are read the same way by
their definitions in ``udnet/ops``."""

from udnet.backends.pytorch.helper_text import helper_text

#: The fractal join and its global drop-path (fractal_join.py).
JOIN = helper_text("fractal_join.py")

#: The shared-buffer runtime (shared_buffer.py).
CONCAT_BUFFER = helper_text("shared_buffer.py")
