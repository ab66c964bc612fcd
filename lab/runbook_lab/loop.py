"""An asyncio event loop in a daemon thread: how the twin's servers run beside synchronous code
(the ``runbook`` command, papermill, the tests)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine


class BackgroundLoop:
    """Start with the constructor, hand coroutines to :meth:`run`, end with :meth:`close`."""

    def __init__(self, name: str = "lab-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """Run ``coro`` on the loop and wait (at most ``timeout`` seconds) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, timeout: float = 10) -> None:
        """Stop the loop and its thread; a second call does nothing."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()
