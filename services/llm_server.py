"""Ray's LLMServer with two changes: the first streamed chunk leaves at once, and LoRA
adapters load from our adapter registry (services.adapter_loader).

Ray Serve LLM batches a stream's chunks every ``stream_batching_interval_ms`` to
cut per-chunk hops (engine -> ingress -> proxy), but it holds the first chunk for
a whole interval too, which adds up to that interval to every time-to-first-token
and leaves a just-admitted request idle in closed-loop clients. Here the first
chunk is sent alone and only the rest are batched, so the interval can be long
(fewer hops, more throughput) without costing first-token latency.
"""

from __future__ import annotations

from typing import AsyncGenerator, AsyncIterator, List, TypeVar

from services.ray_compat import Batcher, LLMServer

T = TypeVar("T")


async def _rest(it: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    async for item in it:
        yield item


async def first_then_batched(generator: AsyncGenerator[T, None],
                             interval_ms: float | None) -> AsyncGenerator[List[T], None]:
    """``[first]``, then lists of what arrived during each ``interval_ms``."""
    it = generator.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        return
    yield [first]
    async for batch in Batcher(_rest(it), interval_ms=interval_ms).stream():
        yield batch


class LlamaRagLLMServer(LLMServer):
    def _init_multiplex_loader(self, model_downloader_cls=None):
        """LoRA adapters come from our registry (services.adapter_loader), not a cloud URI."""
        from services.adapter_loader import AdapterStoreLoader

        super()._init_multiplex_loader(model_downloader_cls or AdapterStoreLoader)

    def _batch_output_stream(self, generator: AsyncGenerator[T, None]) -> AsyncGenerator[List[T], None]:
        return first_then_batched(generator, self._get_batch_interval_ms())
