"""Webhooks v2 as the change feed: the receiver (``tap-pipedrive-webhooks serve``), the
registration of webhooks in Pipedrive, and the tap's consumption of the stored events."""
