"""``ttsopt serve``: an OpenAI-compatible speech server over a text-to-speech package (FastAPI + uvicorn).

One job per module: :mod:`.app` (routes, errors, streaming responses), :mod:`.engine` (inference off
the event loop, one isolated request at a time per worker thread, cancellation), :mod:`.audio`
(response encodings), :mod:`.limits` (admission → 429, the finished-audio cache), :mod:`.metrics`
(Prometheus), :mod:`.schemas` (the request body), :mod:`.text` (request text → phonemes). Like the
runtime, it never imports torch.
"""
