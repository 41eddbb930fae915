"""The one SSE writer and parser: what /v1/ask writes, the client reads back."""

from llama_rag import sse


def test_events_round_trip_and_done_is_skipped():
    text = sse.format_event("sources", {"citations": []}) + sse.format_event(
        "token", {"text": "Hi"}) + "data: [DONE]\n\n"
    assert list(sse.events(text.splitlines())) == [("sources", {"citations": []}),
                                                   ("token", {"text": "Hi"})]


def test_data_objects_accept_every_packet_shape():
    from pydantic import BaseModel

    class Chunk(BaseModel):
        n: int

    assert sse.data_objects('data: {"n": 1}\n\ndata: {"n": 2}\n\n') == [{"n": 1}, {"n": 2}]
    assert sse.data_objects([{"n": 3}, Chunk(n=4)]) == [{"n": 3}, {"n": 4}]
