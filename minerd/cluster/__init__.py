"""A site split over processes on NATS JetStream: poller shards and the site controller.

Pure parts: `curve` (what a shard can do with more power), `split` (the site budget over
shard curves), `messages` (versioned JSON on the wire), `safety` (a shard's budget gate:
fencing by lease revision, hold, fail-safe share). Runtime: `lease` (controller leadership
as a JetStream KV key with TTL) and `nodes` (a controller and a shard on one NATS
connection). Only the composition root imports this package.
"""
