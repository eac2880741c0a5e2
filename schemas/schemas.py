"""Contract schemas of the bronze tables (SPEC section 3) as Spark StructTypes.

Column names, order and types are the contract; ``nullable=False`` marks the not-null columns (the
validator enforces them, Spark's file readers do not). Audit columns are added by ``bronze.audit``.
"""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _schema(*fields: tuple[str, DataType, bool]) -> StructType:
    return StructType([StructField(name, dtype, nullable) for name, dtype, nullable in fields])


NOT_NULL = False
NULLABLE = True

CUSTOMERS = _schema(
    ("customer_id", LongType(), NOT_NULL),
    ("natural_key", StringType(), NOT_NULL),
    ("first_name", StringType(), NULLABLE),
    ("last_name", StringType(), NULLABLE),
    ("email", StringType(), NOT_NULL),
    ("phone", StringType(), NULLABLE),
    ("address_line1", StringType(), NULLABLE),
    ("address_line2", StringType(), NULLABLE),
    ("city", StringType(), NULLABLE),
    ("state_region", StringType(), NULLABLE),
    ("postcode", StringType(), NULLABLE),
    ("country_code", StringType(), NULLABLE),
    ("latitude", DoubleType(), NULLABLE),
    ("longitude", DoubleType(), NULLABLE),
    ("birth_date", DateType(), NULLABLE),
    ("join_ts", TimestampType(), NULLABLE),
    ("is_vip", BooleanType(), NULLABLE),
    ("gdpr_consent", BooleanType(), NULLABLE),
)

PRODUCTS = _schema(
    ("product_id", LongType(), NOT_NULL),
    ("sku", StringType(), NOT_NULL),
    ("name", StringType(), NULLABLE),
    ("category", StringType(), NULLABLE),
    ("subcategory", StringType(), NULLABLE),
    ("current_price", DecimalType(12, 4), NULLABLE),
    ("currency", StringType(), NULLABLE),
    ("is_discontinued", BooleanType(), NULLABLE),
    ("introduced_dt", DateType(), NULLABLE),
    ("discontinued_dt", DateType(), NULLABLE),
)

ORDERS = _schema(
    ("order_id", LongType(), NOT_NULL),
    ("order_ts", TimestampType(), NOT_NULL),
    ("order_dt", DateType(), NOT_NULL),
    ("customer_id", LongType(), NOT_NULL),
    ("store_id", LongType(), NULLABLE),
    ("channel", StringType(), NULLABLE),
    ("payment_method", StringType(), NULLABLE),
    ("coupon_code", StringType(), NULLABLE),
    ("shipping_fee", DecimalType(12, 2), NULLABLE),
    ("currency", StringType(), NULLABLE),
)

EVENTS = _schema(
    ("event_id", StringType(), NOT_NULL),
    ("event_ts", TimestampType(), NOT_NULL),
    ("event_type", StringType(), NOT_NULL),
    ("customer_id", LongType(), NULLABLE),
    ("session_id", StringType(), NULLABLE),
    ("product_id", LongType(), NULLABLE),
    ("store_id", LongType(), NULLABLE),
    ("properties", MapType(StringType(), StringType()), NULLABLE),
)

SENSORS = _schema(
    ("sensor_ts", TimestampType(), NOT_NULL),
    ("store_id", LongType(), NOT_NULL),
    ("shelf_id", StringType(), NULLABLE),
    ("temperature_c", DecimalType(5, 2), NULLABLE),
    ("humidity_pct", DecimalType(5, 2), NULLABLE),
    ("battery_mv", IntegerType(), NULLABLE),
)

SHIPMENTS = _schema(
    ("shipment_id", LongType(), NOT_NULL),
    ("order_id", LongType(), NOT_NULL),
    ("carrier", StringType(), NULLABLE),
    ("shipped_at", TimestampType(), NULLABLE),
    ("delivered_at", TimestampType(), NULLABLE),
    ("ship_cost", DecimalType(12, 2), NULLABLE),
)

EXCHANGE_RATES = _schema(
    ("date", DateType(), NOT_NULL),
    ("currency", StringType(), NOT_NULL),
    ("rate_to_aud", DecimalType(18, 8), NOT_NULL),
)

# The change log as first written; later commits add return_reason_code (schema evolution).
RETURNS = _schema(
    ("return_id", LongType(), NOT_NULL),
    ("order_id", LongType(), NOT_NULL),
    ("product_id", LongType(), NULLABLE),
    ("return_ts", TimestampType(), NULLABLE),
    ("qty", IntegerType(), NULLABLE),
    ("reason", StringType(), NULLABLE),
    ("op", StringType(), NOT_NULL),
    ("change_ts", TimestampType(), NOT_NULL),
)

# A Kafka record as it arrived (seed 003): value and key as text, where it sits, the broker's timestamp.
KAFKA_RAW = _schema(
    ("raw_data", StringType(), NULLABLE),  # NULL: a tombstone
    ("kafka_key", StringType(), NULLABLE),
    ("topic", StringType(), NOT_NULL),
    ("partition", IntegerType(), NOT_NULL),
    ("offset", LongType(), NOT_NULL),
    ("kafka_timestamp", TimestampType(), NULLABLE),
)

SCHEMAS: dict[str, StructType] = {
    "customers": CUSTOMERS,
    "products": PRODUCTS,
    "orders": ORDERS,
    "events": EVENTS,
    "sensors": SENSORS,
    "shipments": SHIPMENTS,
    "exchange_rates": EXCHANGE_RATES,
    "returns": RETURNS,
    "kafka_raw": KAFKA_RAW,
}
