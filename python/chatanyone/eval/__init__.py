"""Evaluation of the trained parts against real clips (``chatanyone eval ...``) and the speaker
split every evaluation and training run uses (:mod:`.split`).

- :mod:`.split`: the speaker-held-out and dev clips (every evaluation uses it);
- :mod:`.prepare`: a raw video on the 25 fps timeline with its audio and landmarks, cached;
- :mod:`.mouth`: face-mesh measures on any frames (mouth opening, lips, head pose, eyes);
- :mod:`.frames`: which pixels of a rendered frame are real, and the real frame seen the same way;
- :mod:`.lipsync`: ``eval lipsync``, lip sync end to end through the Session;
- :mod:`.selfdriven`: ``eval render`` on raw videos (self-driven reenactment, real pixels only);
- :mod:`.render`: ``eval render`` on corpus clip folders; :mod:`.motion`: ``eval motion``.

Layer 6 (offline): may import the run-time layers and ``data``; nothing on the run-time path
imports it (tests/test_layering.py)."""
