"""Publishing inference and label events to driftd from a model server.

``EventPublisher`` sends events in driftd's contract (docs/events.md) through a bounded,
non-blocking buffer and a batching Kafka producer, counting whatever it has to drop; see
docs/publishing.md. It imports nothing of the engine: a model server needs only this
package, the Kafka client helpers and the configuration's Kafka section.
"""

from monitor.publish.publisher import RESERVED_FIELDS, EventPublisher
from monitor.publish.stats import DROP_REASONS, PublisherStats

__all__ = ["DROP_REASONS", "RESERVED_FIELDS", "EventPublisher", "PublisherStats"]
