"""Several worker processes serving one server (``workers = N`` in the configuration).

:mod:`~jaybird.server.workers.process` starts and watches them; :mod:`~jaybird.server.workers.mesh` links them
and makes every client session visible to all; :mod:`~jaybird.server.workers.frames` is what the links carry.
"""
