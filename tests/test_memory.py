"""What a run keeps between batches stays bounded, however many user trees it writes
(issue 14: peak RSS at 1M users within 20% of 10k; measured by ``benchmarks/memory.py``).
Asserted by size, never by time."""

from __future__ import annotations

import gc
import tracemalloc

from invoicegen.identities import client_email


def _retained_bytes(work: object) -> int:
    """Bytes still allocated after ``work()`` ran (and the garbage was collected)."""
    assert callable(work)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_email_helpers_keep_little_for_many_distinct_companies() -> None:
    """A million users draw hundreds of thousands of distinct company names (Faker's
    "Müller-Schmidt" pairs); the caches behind client emails keep a few MiB of them at most
    (they held 65,536 words each, ~30 MiB per generating worker by 100k users)."""

    def emails() -> None:
        for i in range(12_000):  # 24,000 distinct words
            client_email(("anna", "muller"), f"Müller{i}-Groß{i} Bäcker{i}", i)

    retained = _retained_bytes(emails)
    assert retained < 6 * 2**20, f"{retained / 2**20:.1f} MiB kept"
