"""Making the moto server answer as real S3 does where moto differs, for the artifacts tests."""

from __future__ import annotations

import threading


def atomic_conditional_writes(monkeypatch) -> None:
    """moto 5.2.5 honours If-None-Match: * on PutObject and CompleteMultipartUpload, but checks
    and stores in two steps with nothing between them held: two writers racing on one key can both
    pass the check (measured: 10 of 60 races of 8 MB puts had two or no winner; none of 200 with
    200 KB). S3 decides a conditional write atomically; so, here, moto's object writes run one at
    a time. The race stays real: both requests are in flight together, over HTTP."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    for name in ("_key_response_put", "_key_response_post"):
        real = getattr(S3Response, name)

        def serialized(self, *args, _real=real, **kwargs):
            with lock:
                return _real(self, *args, **kwargs)

        monkeypatch.setattr(S3Response, name, serialized)
