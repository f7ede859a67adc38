"""Deterministic, lazy generation of a seeded Pipedrive account.

Every record is a pure function of (seed, entity, id), so a million-deal account costs nothing
until it is read: the account only keeps the records that were read (when small) or mutated.
"""

from __future__ import annotations

from pipedrive_simulator.gen_contacts import ContactGenerator
from pipedrive_simulator.gen_deals import DealGenerator
from pipedrive_simulator.gen_work import WorkGenerator
from pipedrive_simulator.seed import ACTIVITY_TYPES, CURRENCIES, Sizes

__all__ = ["ACTIVITY_TYPES", "CURRENCIES", "Generator", "Sizes"]


class Generator(DealGenerator, ContactGenerator, WorkGenerator):
    """Builds the seeded account's base records on demand."""
