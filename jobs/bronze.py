"""bronze job entry point for spark-submit.

Usage (the wrapper adds the jars, the package zip and the confs):

    ./spark-submit.sh [--raw data_raw] [--lake lake] [--manifest duckdb/warehouse.duckdb]
                      [--config conf/bronze.yaml] [--tables a,b] [--dry-run] [--reprocess PATH_OR_GLOB]
                      [--lock-wait SECONDS] [--parallel N]

which runs:

    spark-submit --jars <delta,spark-excel jars> --py-files dist/bronze.zip jobs/bronze.py [args]

The first argument may name a subcommand instead of a run (see ``bronze.cli``): ``manifest rebuild``,
``replay --table T``, ``maintain [--vacuum-hours N] [--rejects-days N] [--landing-days N]``, ``status``,
``rejects TABLE``.

Exit codes: 0 every file ingested or skipped as done; 1 some files failed or changed in place (the rest
landed); 2 bad usage or configuration, or another run kept the lake locked (nothing written).
"""

from __future__ import annotations

import os
import sys

# This file is named like the package it runs: drop its own folder from the import path first.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from bronze.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
