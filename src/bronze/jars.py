"""JVM dependencies: resolved once from Maven Central into the project's ``.ivy2/``, then used offline.

Resolution goes through Spark's own Ivy code path (``spark-submit --packages``) so that Spark's
exclusions apply; afterwards every session and ``spark-submit.sh`` pass the cached jars explicitly
(``spark.jars`` / ``--jars``), which needs no network and works the same on a cluster.

Run ``python -m bronze.jars --ensure`` to resolve (idempotent); it prints the comma-separated jar list.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[2]

# Pinned JVM packages. spark-excel: SPEC asks for dev.mauch:spark-excel_2.12:3.5.6_0.3x.y, but the Maven
# Central reachable here serves no dev.mauch artifact and no Spark-3.5 build of com.crealytics; the newest
# one that resolves is 3.3.1_0.18.7, whose V1 reader works on Spark 3.5 (its V2 "excel" format does not).
# Override with BRONZE_MAVEN_PACKAGES where the newer coordinate resolves (see README).
DEFAULT_PACKAGES = (
    "io.delta:delta-spark_2.12:3.3.2",
    "com.crealytics:spark-excel_2.12:3.3.1_0.18.7",
)
# Optional groups, resolved on first use into their own folder: s3a:// (hadoop-aws matches the Hadoop 3.3.4
# client pyspark 3.5 ships; it brings the AWS SDK bundle, 280 MB, so only runs that need it pay for it).
GROUPS: dict[str, tuple[str, ...]] = {
    "s3": ("org.apache.hadoop:hadoop-aws:3.3.4",),
    # PostgreSQL's JDBC driver, for jdbc tables and their tests.
    "jdbc": ("org.postgresql:postgresql:42.7.14",),
    # Spark's Kafka source, for kafka tables: the Maven Central reachable here serves 3.5.1 of the 3.5 line (not
    # 3.5.6); its classes are the same as 3.5.6's and run on the pinned pyspark (tests/test_kafka.py).
    "kafka": ("org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.1",),
}
# The Spark 4 line (BRONZE_SPARK=4: pyspark 4.2.0 + delta-spark 4.4.0, Scala 2.13). From Delta 4.1 the artifact
# names the Spark line; 4.4.1's jar is not served. spark-excel: the only Scala 2.13 build served here is
# com.crealytics 3.5.0_0.20.3 (built for Spark 3.5; its V1 reader runs on Spark 4.2, tests/test_xlsx_cells.py).
SPARK4_PACKAGES = (
    "io.delta:delta-spark_4.2_2.13:4.4.0",
    "com.crealytics:spark-excel_2.13:3.5.0_0.20.3",
)
SPARK4_GROUPS: dict[str, tuple[str, ...]] = {
    "s3": ("org.apache.hadoop:hadoop-aws:3.5.0",),  # pyspark 4.2 ships the Hadoop 3.5.0 client
    "jdbc": ("org.postgresql:postgresql:42.7.14",),
    "kafka": ("org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",),
}


def spark_line() -> str:
    """The Spark line of the installed pyspark: "3.5" or "4" (each has its own jars and jar cache)."""
    import pyspark

    return "4" if pyspark.__version__.startswith("4.") else "3.5"


# The jar group a table's format needs.
FORMAT_GROUPS = {"jdbc": "jdbc", "kafka": "kafka"}
GROUPS_ENV = "BRONZE_JAR_GROUPS"  # e.g. "s3": groups added to every run of spark-submit.sh


class JarResolutionError(RuntimeError):
    """The JVM packages could not be resolved from Maven Central."""


def packages(group: str = "core") -> tuple[str, ...]:
    four = spark_line() == "4"
    if group != "core":
        return (SPARK4_GROUPS if four else GROUPS)[group]
    override = os.environ.get("BRONZE_MAVEN_PACKAGES")
    if override:
        return tuple(p.strip() for p in override.split(",") if p.strip())
    return SPARK4_PACKAGES if four else DEFAULT_PACKAGES


def ivy_dir(project_dir: Path = PROJECT_DIR, group: str = "core") -> Path:
    root = project_dir / (".ivy2" if spark_line() == "3.5" else ".ivy2-spark4")
    return root if group == "core" else root / "groups" / group


def groups_for(args: list[str]) -> list[str]:
    """The optional groups a run needs: s3 when a path is an s3a:// URI, jdbc or kafka when its conf has such a
    table, plus those named in BRONZE_JAR_GROUPS."""
    wanted = [g.strip() for g in os.environ.get(GROUPS_ENV, "").split(",") if g.strip()]
    if any("s3a://" in a or "s3://" in a for a in args):
        wanted.append("s3")
    wanted += _conf_groups(args)
    unknown = [g for g in wanted if g not in GROUPS]
    if unknown:
        raise JarResolutionError(f"expected jar groups among {sorted(GROUPS)} in {GROUPS_ENV}, found {unknown}")
    return list(dict.fromkeys(wanted))


def _conf_groups(args: list[str]) -> list[str]:
    """The groups the tables of the run's conf (``--config``, else conf/bronze.yaml) need by their format."""
    from bronze.config import load_tables  # pulls in pyspark types: only here, not at import
    from bronze.errors import ConfigError

    path = PROJECT_DIR / "conf" / "bronze.yaml"
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            path = Path(args[i + 1])
        elif a.startswith("--config="):
            path = Path(a.split("=", 1)[1])
    try:
        return sorted({FORMAT_GROUPS[t.format] for t in load_tables(path) if t.format in FORMAT_GROUPS})
    except ConfigError:
        return []  # the job itself reports the bad conf (exit 2)


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _spark_artifacts() -> set[str]:
    """Artifact names (without version) of the jars pyspark already ships."""
    names = set()
    for jar in (_spark_home() / "jars").glob("*.jar"):
        m = re.match(r"(.+?)-\d[\w.\-]*\.jar$", jar.name)
        names.add(m.group(1) if m else jar.stem)
    return names


def _kept(jar: Path, shipped: set[str]) -> bool:
    # Ivy names retrieved jars <group>_<artifact>-<version>.jar; drop those Spark already ships so its
    # (newer) copies stay the only ones on the classpath.
    m = re.match(r"[^_]+_(.+?)-\d[\w.\-]*\.jar$", jar.name)
    return not (m and m.group(1) in shipped)


def _stamp(project_dir: Path, group: str) -> Path:
    return ivy_dir(project_dir, group) / "resolved.txt"


def resolved_jars(project_dir: Path = PROJECT_DIR, group: str = "core") -> list[str] | None:
    """The cached jar paths if the group's pinned packages were resolved already, else None."""
    stamp = _stamp(project_dir, group)
    if not stamp.is_file():
        return None
    lines = stamp.read_text().splitlines()
    if not lines or lines[0] != ",".join(packages(group)):
        return None
    jars = lines[1:]
    return jars if all(Path(j).is_file() for j in jars) else None


def ensure_jars(project_dir: Path = PROJECT_DIR, groups: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Resolve the pinned packages (core plus ``groups``) once (network); return the cached jar paths."""
    jars: list[str] = []
    for group in ["core", *groups]:
        jars += _ensure_group(project_dir, group)
    return jars


def _ensure_group(project_dir: Path, group: str) -> list[str]:
    jars = resolved_jars(project_dir, group)
    if jars is not None:
        return jars
    ivy = ivy_dir(project_dir, group)
    ivy.mkdir(parents=True, exist_ok=True)
    logger.info("resolving %s from Maven Central into %s", ",".join(packages(group)), ivy)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as noop:
        noop.write("pass\n")
    cmd = [
        str(_spark_home() / "bin" / "spark-submit"),
        "--master",
        "local[1]",
        "--packages",
        ",".join(packages(group)),
        "--conf",
        f"spark.jars.ivy={ivy}",
        "--conf",
        f"spark.jars.ivySettings={project_dir / 'conf' / 'ivysettings.xml'}",
        noop.name,
    ]
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    os.unlink(noop.name)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise JarResolutionError(
            f"expected {','.join(packages(group))} to resolve from Maven Central, spark-submit exited "
            f"{proc.returncode}:\n{tail}"
        )
    shipped = _spark_artifacts()
    jars = sorted(str(j) for j in (ivy / "jars").glob("*.jar") if _kept(j, shipped))
    if not jars:
        raise JarResolutionError(f"expected jars under {ivy / 'jars'}, found none")
    _stamp(project_dir, group).write_text("\n".join([",".join(packages(group)), *jars]) + "\n")
    return jars


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ensure", action="store_true", help="resolve if needed and print the jar list")
    parser.add_argument("--for-args", nargs=argparse.REMAINDER, default=[], help="the job's arguments (s3a:// paths)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        print(",".join(ensure_jars(groups=groups_for(args.for_args))))
    except JarResolutionError as exc:
        logger.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
