"""Preloaded by the forkserver that forks CPU profiling children (``profiler.run``): import the stack once.

The server only imports modules; it never touches a device, so every child forked from it starts with no
tensors and no CUDA context of its own, and pays no import time.
"""

from profiler.child import import_stack

import_stack()
