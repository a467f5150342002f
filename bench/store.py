"""Parquet through the object store vs raw local-disk Parquet, in the same run.

Backends: the embedded local-directory store and the S3 store (minio SDK) against moto's
S3 server on loopback (MinIO's binary cannot be installed here). Baseline: pyarrow writing
and reading the same DataFrame to/from a local file.

    python bench/store.py [--rows 500000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import SecretStr

import mlops_onprem  # noqa: F401  (telemetry off)
from mlops_onprem.settings import Settings
from mlops_onprem.store.local import LocalStore
from mlops_onprem.store.parquet import get_dataframe, put_dataframe, write_parquet_file
from mlops_onprem.store.s3 import S3Store
from mlops_onprem.synthetic import SyntheticSpec, generate_batch

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spec = SyntheticSpec(n_numeric=30, n_categorical=0, nullable_share=0.0)
    df = generate_batch(spec, args.rows, seed=1, with_label=False)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
        path = Path(scratch) / "disk.parquet"
        figures["disk_write_s"] = best_of(args.repeat, lambda: write_parquet_file(df, path))
        size_mb = path.stat().st_size / 1e6
        figures["disk_read_s"] = best_of(args.repeat, lambda: pq.read_table(path).to_pandas())

        local = LocalStore(Path(scratch) / "store")
        figures["local_put_s"] = best_of(args.repeat, lambda: put_dataframe(local, "b/df.parquet", df))
        figures["local_get_s"] = best_of(args.repeat, lambda: get_dataframe(local, "b/df.parquet"))

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            s3 = S3Store(Settings(
                _env_file=None, s3_endpoint=f"{host}:{port}", s3_access_key=SecretStr("bench"),
                s3_secret_key=SecretStr("bench-secret"), s3_secure=False,
                    bucket=f"bench-{uuid.uuid4().hex[:8]}",
                s3_region="us-east-1", data_dir=Path(scratch),
            ))
            figures["s3_put_s"] = best_of(args.repeat, lambda: put_dataframe(s3, "b/df.parquet", df))
            figures["s3_get_s"] = best_of(args.repeat, lambda: get_dataframe(s3, "b/df.parquet"))
        finally:
            server.stop()

    rate = {name.replace("_s", "_mb_per_s"): size_mb / seconds for name, seconds in figures.items()}
    result = {
        "rows": args.rows, "columns": 30, "parquet_mb": round(size_mb, 1), "cores": os.cpu_count(),
        **{k: round(v, 1) for k, v in rate.items()},
        "local_put_over_disk_write": round(figures["disk_write_s"] / figures["local_put_s"], 3),
        "local_get_over_disk_read": round(figures["disk_read_s"] / figures["local_get_s"], 3),
        "s3_put_over_disk_write": round(figures["disk_write_s"] / figures["s3_put_s"], 3),
        "s3_get_over_disk_read": round(figures["disk_read_s"] / figures["s3_get_s"], 3),
    }
    print(f"Parquet of {args.rows:,} rows x 30 floats = {size_mb:.0f} MB, best of {args.repeat}")
    print(f"{'path':<22}{'write MB/s':>12}{'read MB/s':>12}")
    for label, prefix in (("raw local disk", "disk"), ("local store", "local"), ("S3 store (moto)", "s3")):
        w = rate[f"{prefix}_write_mb_per_s" if prefix == "disk" else f"{prefix}_put_mb_per_s"]
        r = rate[f"{prefix}_read_mb_per_s" if prefix == "disk" else f"{prefix}_get_mb_per_s"]
        print(f"{label:<22}{w:>12.0f}{r:>12.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"s3_put_over_disk_write={result['s3_put_over_disk_write']} "
          f"s3_get_over_disk_read={result['s3_get_over_disk_read']} "
          "(no target: ratios of S3 via moto vs raw disk; higher is better)")


if __name__ == "__main__":
    main()
