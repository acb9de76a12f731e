"""Run by the emulated Colab kernel at start (``PYTHONSTARTUP``).

Colab imports ``google.colab`` when a runtime starts, and its page never shows widget
updates sent from a thread other than the kernel's main one (googlecolab/colabtools#3373):
such messages are dropped here too, and counted in ``DROPPED_FROM_THREADS``.
"""

import threading

import google.colab  # noqa: F401  (imported at start, as on Colab)
from ipykernel.comm import Comm

DROPPED_FROM_THREADS = []
_publish = Comm._publish_msg


def _main_thread_only(self, msg_type, *args, **kwargs):
    if threading.current_thread() is not threading.main_thread():
        DROPPED_FROM_THREADS.append(msg_type)
        return None
    return _publish(self, msg_type, *args, **kwargs)


Comm._publish_msg = _main_thread_only
