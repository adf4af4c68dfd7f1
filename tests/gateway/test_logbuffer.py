"""Buffered log lines: kept until a batch, a warning or the interval, each with the request id it was made with."""

import asyncio
import io
import logging

from microservices.common.logging import JsonFormatter, request_id_var
from microservices.gateway.logbuffer import BufferedStreamHandler, buffered_logging


def test_lines_are_written_in_a_batch_and_warnings_at_once():
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, capacity=3)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.logbuffer.batch")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("one")
    log.info("two")
    assert stream.getvalue() == ""
    log.info("three")
    assert stream.getvalue() == "INFO one\nINFO two\nINFO three\n"
    log.info("four")
    log.warning("five")
    assert stream.getvalue().endswith("INFO three\nINFO four\nWARNING five\n")


async def test_root_lines_keep_their_request_id_and_are_flushed_by_the_interval():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    plain = logging.StreamHandler(stream)
    plain.setFormatter(JsonFormatter("gateway"))
    root.handlers[:] = [plain]
    root.setLevel(logging.INFO)
    try:
        async with buffered_logging(interval_s=0.05):
            token = request_id_var.set("req-7")
            logging.getLogger("access").info("GET /api/jobs 200")
            request_id_var.reset(token)
            assert stream.getvalue() == ""
            await asyncio.sleep(0.2)
            assert '"request_id":"req-7"' in stream.getvalue()
            assert '"message":"GET /api/jobs 200"' in stream.getvalue()
        assert root.handlers == [plain]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
