"""Evaluate bodies decoded in the decoder process (service.points): the same answers as inline, its errors as
4xx problems, and a fresh process after the decoder dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import numpy as np
import pytest

from service.points import PointsDecoder, parse_points
from service.problems import Problem


def test_large_json_is_decoded_in_a_process_like_inline():
    pts = np.random.default_rng(0).uniform(-1, 1, (3000, 20))
    body = json.dumps({"points": pts.tolist()}).encode()
    dec = PointsDecoder(inline_bytes=1024)
    try:
        got = asyncio.run(dec.decode(body, "application/json", 10_000))
        np.testing.assert_array_equal(got, pts)
        np.testing.assert_array_equal(got, parse_points(body, "application/json", 10_000))
        assert dec._pool is not None  # it went through the process
        bad = json.loads(body)
        bad["points"][7][3] = "x"
        with pytest.raises(Problem) as e:
            asyncio.run(dec.decode(json.dumps(bad).encode(), "application/json", 10_000))
        assert e.value.status_code == 422 and e.value.extensions["errors"][0]["field"] == "points.7.3"
        with pytest.raises(Problem) as e:
            asyncio.run(dec.decode(body[:-5], "application/json", 10_000))
        assert e.value.status_code == 400 and e.value.kind == "invalid-json"
        with pytest.raises(Problem) as e:
            asyncio.run(dec.decode(body, "application/json", 100))
        assert e.value.status_code == 413

        for pid in list(dec._pool._processes):  # the decoder dies: one 503, then a fresh process
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(Problem) as e:
            asyncio.run(dec.decode(body, "application/json", 10_000))
        assert e.value.status_code == 503
        np.testing.assert_array_equal(asyncio.run(dec.decode(body, "application/json", 10_000)), pts)
    finally:
        dec.close()
