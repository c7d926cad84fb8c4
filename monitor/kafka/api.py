"""kafka-python, imported once, quietly.

kafka-python 3.0 reads its protocol schemas at import time through an
``importlib.resources`` API that warns ``DeprecationWarning`` on Python 3.11+.
Every module of ours takes the client classes from here, so the warning is
silenced in one place and nowhere else.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"(read_text|open_text) is deprecated", category=DeprecationWarning
    )
    import kafka.errors as kafka_errors
    from kafka import (
        AsyncConsumerRebalanceListener,
        KafkaAdminClient,
        KafkaConsumer,
        KafkaProducer,
        OffsetAndMetadata,
        TopicPartition,
    )
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.net.compat import KafkaNetClient
    from kafka.structs import MemberState

__all__ = [
    "AsyncConsumerRebalanceListener",
    "ConfigResource",
    "ConfigResourceType",
    "KafkaAdminClient",
    "KafkaConsumer",
    "KafkaNetClient",
    "KafkaProducer",
    "MemberState",
    "OffsetAndMetadata",
    "TopicPartition",
    "kafka_errors",
]
