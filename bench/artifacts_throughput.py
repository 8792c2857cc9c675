"""Artifact store throughput: write and read ~100 MB of Parquet through the local store.

Usage: python bench/artifacts_throughput.py [--mb 100] [--dir PATH]

Prints MB/s for ``put`` (serialize + hash + fsync'd atomic write) and ``get`` (read + verify
hash + deserialize), measured on the DataFrame's in-memory size, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time

import numpy as np
import pandas as pd

from kaon.artifacts.fsspec_store import FsspecArtifactStore
from kaon.model.values import ArtifactRef


def make_frame(megabytes: int, seed: int = 0) -> pd.DataFrame:
    """A DataFrame of random float64 and int64 columns totalling about ``megabytes`` MB."""
    rng = np.random.default_rng(seed)
    rows = megabytes * 1_000_000 // (4 * 8)
    return pd.DataFrame(
        {
            "f0": rng.random(rows),
            "f1": rng.standard_normal(rows),
            "i0": rng.integers(0, 1_000_000, rows, dtype=np.int64),
            "i1": rng.integers(-(2**62), 2**62, rows, dtype=np.int64),
        }
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="DataFrame size in MB")
    parser.add_argument("--dir", default=None, help="store directory (default: a temp dir)")
    args = parser.parse_args()

    root = args.dir or tempfile.mkdtemp(prefix="kaon-bench-artifacts-")
    try:
        frame = make_frame(args.mb)
        size_mb = frame.memory_usage(index=True, deep=True).sum() / 1e6
        rss_before = peak_rss_mb()
        store = FsspecArtifactStore(root)

        started = time.perf_counter()
        ref = store.put(frame, name="frame")
        write_s = time.perf_counter() - started
        assert isinstance(ref, ArtifactRef)

        started = time.perf_counter()
        loaded = store.get(ref)
        read_s = time.perf_counter() - started
        assert len(loaded) == len(frame)

        print(f"dataframe     {size_mb:8.1f} MB in memory, {len(frame):,} rows")
        print(f"blob          {ref.size / 1e6:8.1f} MB parquet")
        print(f"write (put)   {size_mb / write_s:8.1f} MB/s  ({write_s:.2f} s)")
        print(f"read (get)    {size_mb / read_s:8.1f} MB/s  ({read_s:.2f} s)")
        print(f"peak RSS      {peak_rss_mb():8.1f} MB  (before put/get: {rss_before:.1f} MB)")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
