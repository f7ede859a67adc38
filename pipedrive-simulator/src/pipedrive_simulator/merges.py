"""Merging one deal into another, as ``PUT /v1/deals/{id}/merge`` does (here a control only).

Pipedrive keeps the deal merged *with* (``merge_with_id``) and removes the merged one: the spec
(``mergeDeals``) answers with a deal and ``merge_what_id``, and Pipedrive's
tutorial ("Merging two deals") says the merged deal "will be removed from your Pipedrive
account". The specs document no answer for reading a merged deal afterwards; the simulator
answers its per-deal endpoints (``/deals/{id}/changelog``, ``/deals/{id}/flow``) with
``410 Gone`` in the envelope the specs give their other 410s, and leaves it out of every list at
once (unlike a deleted deal, which stays listed with ``status=deleted`` for 30 days). Only the
deals themselves are modelled: activities, notes and products are not moved to the survivor.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from pipedrive_simulator.errors import ApiError

if TYPE_CHECKING:
    from pipedrive_simulator.account import Account


def merge_deal(account: Account, ident: int, merge_with_id: int) -> dict[str, Any]:
    """Merge deal ``ident`` into ``merge_with_id``; returns the surviving deal."""
    with account.lock:
        deals = account.stores["deals"]
        if ident == merge_with_id:
            raise ValueError("a deal cannot be merged with itself")
        records = {}
        for deal_id in (ident, merge_with_id):
            rec = deals.get(deal_id)
            if rec is None or rec["is_deleted"] or deal_id in account.merged:
                raise ValueError(f"no deals record with id {deal_id!r}")
            records[deal_id] = rec
        now = account.clock.now_text()
        account.snapshot_deal(ident)
        account.merged[ident] = merge_with_id
        # Deleted, so every mutation refuses it; the merged map hides it from lists at once.
        merged = {
            **copy.deepcopy(records[ident]),
            "status": "deleted",
            "is_deleted": True,
            "update_time": now,
        }
        survivor = {**copy.deepcopy(records[merge_with_id]), "update_time": now}
        deals.put(merged)
        deals.put(survivor)
        return copy.deepcopy(survivor)


def merged_deal_gone(ident: int, merged_with: int) -> ApiError:
    """The answer for a merged deal's own endpoints."""
    return ApiError(
        410,
        f"The deal you are trying to access is no longer available: deal {ident} was merged "
        f"into deal {merged_with}",
    )
