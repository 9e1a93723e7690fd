"""NATS subjects and the lease bucket of one site. Site and shard ids are NATS tokens."""

from __future__ import annotations

import re

from minerd.errors import ClusterError

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_token(kind: str, value: str) -> str:
    """A site or shard id must be one subject token (no dots, spaces or wildcards)."""
    if not _TOKEN.match(value):
        raise ClusterError(kind, value, "must be 1-64 of A-Z a-z 0-9 _ -")
    return value


def aggregate_subject(site: str, shard: str) -> str:
    return f"minerd.{site}.shard.{shard}.aggregate"


def aggregates_wildcard(site: str) -> str:
    return f"minerd.{site}.shard.*.aggregate"


def budget_subject(site: str, shard: str) -> str:
    return f"minerd.{site}.shard.{shard}.budget"


def lease_bucket(site: str) -> str:
    return f"minerd-{site}-lease"


LEASE_KEY = "controller"
