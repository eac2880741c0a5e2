"""bronze: Spark-native bronze-layer ingestion with explicit schemas, rejects with reasons and audit columns."""

__version__ = "0.1.0"
