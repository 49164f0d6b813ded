"""A deadline on this rank's own evaluation, so a stuck fitness function ends with an error too.

The process group's timeout only covers collectives: the ranks waiting in the fitness exchange
give up after it, but the rank that is stuck inside its fitness function never reaches the
exchange. The watchdog is a daemon thread that, when an armed section outlives its deadline,
sends ``SIGINT`` to the main thread: a blocking system call (``time.sleep``, a socket read)
returns early and Python's default handler raises ``KeyboardInterrupt``, which
:meth:`Watchdog.armed` turns into a :class:`RankFailureError`. Code stuck inside one C call that
retries through signals is out of its reach: the launcher (torchrun, ``torch.multiprocessing``)
stops such a rank once its peers have failed. A program that installs its own ``SIGINT``
handler gets that handler's behaviour instead. Where ``SIGINT`` is ignored or left to the
operating system's default (a job started in the background by a shell, ``signal.SIG_IGN`` set
by a launcher), the armed section installs Python's default handler for its duration, so the
deadline still interrupts it, and restores the previous disposition afterwards.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

from .errors import RankFailureError


class Watchdog:
    """Deadlines of ``timeout_s`` seconds for sections run under :meth:`armed`."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._lock = threading.Condition()
        self._deadline: float | None = None
        self._fired = False
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def armed(self, description: str):
        """Run the ``with`` body under the deadline. Raises :class:`RankFailureError` naming
        ``description`` if the body was interrupted for outliving it."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "the watchdog interrupts the main thread, but this section runs in another thread; "
                "run the training loop in the main thread or disable the watchdog (timeout_s=None)"
            )
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with self._lock:
            self._start_thread()
            self._fired = False
            self._deadline = time.monotonic() + self.timeout_s
            self._lock.notify()
        try:
            try:
                yield
            finally:
                with self._lock:
                    self._deadline = None
                if not callable(previous):
                    signal.signal(signal.SIGINT, previous)
        except KeyboardInterrupt:
            if not self._fired:
                raise
            raise RankFailureError(
                f"{description} ran longer than the {self.timeout_s:g} s timeout and was interrupted; "
                "its peers stop with the same kind of error. Raise the timeout if evaluations are "
                "legitimately this slow"
            ) from None

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="eggroll-watchdog", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        with self._lock:
            while True:
                if self._deadline is None:
                    self._lock.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                self._fired = True
                self._deadline = None
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
