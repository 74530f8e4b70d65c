"""``chatanyone serve``: the avatar live in a browser over WebRTC (aiortc), many sessions at once.

- :mod:`.live`: the timing core (feeding on the microphone's clock, paced paired release, interrupt);
- :mod:`.rtc`: aiortc tracks over it;
- :mod:`.server`: the page, the JSON API, admission control, idle timeout, graceful shutdown;
- :mod:`.worker`: each session's Session in its own worker process (sessions use the cores side by side);
- :mod:`.uploads`: content checks on uploaded photos and speech files;
- :mod:`.capacity`: how many real-time sessions this machine holds (measured).

Needs the ``[serve]`` extra (aiortc, aiohttp).
"""
from .server import LiveServer, ServeOptions, run_server

__all__ = ["LiveServer", "ServeOptions", "run_server"]
