"""Work over several processes, results in input order (prepare-crops fields, embed-classical chunks)."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterator, Sequence


def map_ordered(function: Callable, items: Sequence, workers: int) -> Iterator:
    """``map(function, items)`` over `workers` processes, in order, with at most 2·workers in flight.

    `function` must be picklable (a module-level function or a `functools.partial` of one). With
    ``workers <= 1`` it runs in this process. Results come back in the order of `items`, so the
    output of a caller that writes them in turn does not depend on `workers`.
    """
    if workers <= 1:
        for item in items:
            yield function(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers start from a clean server process (safe after TensorFlow or threads in
    # the parent, unlike fork) that imported the function's module once (fast, unlike spawn).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([getattr(function, "func", function).__module__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: collections.deque = collections.deque()
        iterator = iter(items)
        try:
            for item in itertools.islice(iterator, 2 * workers):
                pending.append(pool.submit(function, item))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(iterator, 1):
                    pending.append(pool.submit(function, item))
                yield result
        finally:
            for future in pending:
                future.cancel()
