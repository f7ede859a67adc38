"""Deals (with their stage histories), products and deal line items."""

from __future__ import annotations

from typing import Any

from pipedrive_simulator import names
from pipedrive_simulator.fields import FieldDef
from pipedrive_simulator.seed import PIPELINES, SeedBase
from pipedrive_simulator.timeutil import from_epoch


class DealGenerator(SeedBase):
    # -- deals ------------------------------------------------------------------------------
    def deal(
        self, ident: int, custom_defs: list[FieldDef]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A deal and its stage history (creation = entering its first stage)."""
        rng = self.rng(1, ident)
        add, update = self.span(1, ident, self.sizes.deals)
        owner = self.owner(rng)
        pipeline = rng.choices((1, 2, 3), weights=(70, 15, 15))[0]
        stages = self.stages_by_pipeline[pipeline]
        pos = 0 if rng.random() < 0.8 else 1
        history = [
            {"stage_id": stages[pos], "pipeline_id": pipeline, "entered_at": add, "user_id": owner}
        ]
        moves = min(int(rng.expovariate(0.45)), 8) if update > add else 0
        times = sorted(rng.randint(add + 1, update) for _ in range(moves)) if moves else []
        for at in times:
            roll = rng.random()
            if roll < 0.1 and len(PIPELINES) > 1:
                pipeline = rng.choice([p for p in (1, 2, 3) if p != pipeline])
                stages = self.stages_by_pipeline[pipeline]
                pos = min(pos, 1)
            elif roll < 0.27 and pos > 0:
                pos -= 1
            elif pos < len(stages) - 1:
                pos += 1 if rng.random() < 0.85 else min(2, len(stages) - 1 - pos)
            else:
                continue
            actor = owner if rng.random() < 0.8 else rng.choice(self.user_ids)
            if history[-1]["stage_id"] != stages[pos]:
                history.append(
                    {
                        "stage_id": stages[pos],
                        "pipeline_id": pipeline,
                        "entered_at": at,
                        "user_id": actor,
                    }
                )
        status_roll = rng.random()
        status = "open" if status_roll < 0.55 else ("won" if status_roll < 0.8 else "lost")
        deleted, update = self._deleted(ident, add, update)
        history = history[:1] + [h for h in history[1:] if h["entered_at"] <= update]
        closed_at = update if status != "open" else None
        archived = not deleted and status != "open" and rng.random() < 0.08
        value = rng.randint(1, 400) * 250
        currency = rng.choices(("EUR", "USD", "GBP"), weights=(50, 35, 15))[0]
        org_id = (
            rng.randint(1, self.sizes.organizations)
            if self.sizes.organizations and rng.random() < 0.9
            else None
        )
        person_id = (
            rng.randint(1, self.sizes.persons)
            if self.sizes.persons and rng.random() < 0.9
            else None
        )
        last = history[-1]
        won_time = from_epoch(closed_at) if status == "won" and closed_at else None
        lost_time = from_epoch(closed_at) if status == "lost" and closed_at else None
        org_name = self.org_name(org_id) if org_id else "Unknown company"
        deal = {
            "id": ident,
            "title": f"{org_name} - {rng.choice(names.DEAL_WORDS)}",
            "creator_user_id": owner,
            "owner_id": owner,
            "value": value,
            "person_id": person_id,
            "org_id": org_id,
            "stage_id": last["stage_id"],
            "pipeline_id": last["pipeline_id"],
            "currency": currency,
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "stage_change_time": from_epoch(last["entered_at"]) if len(history) > 1 else None,
            "status": "deleted" if deleted else status,
            "probability": None,
            "lost_reason": rng.choice(names.LOST_REASONS) if status == "lost" else None,
            "visible_to": 3,
            "close_time": from_epoch(closed_at) if closed_at else None,
            "won_time": won_time,
            "lost_time": lost_time,
            "local_won_date": won_time[:10] if won_time else None,
            "local_lost_date": lost_time[:10] if lost_time else None,
            "local_close_date": from_epoch(closed_at)[:10] if closed_at else None,
            "expected_close_date": from_epoch(add + rng.randint(14, 120) * 86400)[:10]
            if rng.random() < 0.7
            else None,
            "label_ids": sorted(rng.sample((1, 2, 3, 4), rng.randint(0, 2))),
            "is_deleted": deleted,
            "is_archived": archived,
            "archive_time": from_epoch(update) if archived else None,
            "origin": "ManuallyCreated",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "custom_fields": self.custom_values(1, ident, custom_defs),
        }
        # The status change (won/lost/deleted) is the latest event; keep history before it.
        stage_history = [
            {
                "stage_id": h["stage_id"],
                "pipeline_id": h["pipeline_id"],
                "entered_at": from_epoch(h["entered_at"]),
                "user_id": h["user_id"],
            }
            for h in history
        ]
        return deal, stage_history

    def _deleted(self, ident: int, add: int, update: int) -> tuple[bool, int]:
        """Whether the deal is deleted, and its update time (deletions are recent: some are
        older than the 30 days the API still shows them)."""
        if self.uniform(13, ident, 1) < 0.03:
            return True, max(add, self.start - int(self.uniform(13, ident, 2) * 61) * 86400)
        return False, update

    def deal_update_time(self, ident: int) -> str:
        """The deal's update time without building the deal (for the sort index)."""
        add, update = self.span(1, ident, self.sizes.deals)
        return from_epoch(self._deleted(ident, add, update)[1])

    # -- products and deal line items -------------------------------------------------------
    def product(self, ident: int, custom_defs: list[FieldDef]) -> dict[str, Any]:
        rng = self.rng(4, ident)
        add, update = self.span(4, ident, self.sizes.products)
        base = names.PRODUCT_NAMES[(ident - 1) % len(names.PRODUCT_NAMES)]
        price = float(rng.randint(2, 400) * 5)
        return {
            "id": ident,
            "name": base if ident <= len(names.PRODUCT_NAMES) else f"{base} v{ident}",
            "code": f"SKU-{ident:05d}",
            "unit": rng.choice(("pcs", "seat", "hour", "month")),
            "tax": rng.choice((0.0, 20.0, 22.0)),
            "is_deleted": False,
            "is_linkable": True,
            "visible_to": 3,
            "owner_id": self.owner(rng),
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "description": None,
            "category": None,
            "billing_frequency": rng.choice(("one-time", "monthly", "annually")),
            "billing_frequency_cycles": None,
            "prices": [
                {
                    "product_id": ident,
                    "price": price,
                    "currency": "EUR",
                    "cost": round(price * 0.4, 2),
                    "direct_cost": None,
                    "notes": "",
                },
                {
                    "product_id": ident,
                    "price": round(price * 1.1, 2),
                    "currency": "USD",
                    "cost": round(price * 0.45, 2),
                    "direct_cost": None,
                    "notes": "",
                },
            ],
            "custom_fields": self.custom_values(4, ident, custom_defs),
        }

    def line_item_count(self, deal_id: int) -> int:
        return self.rng(5, deal_id).choices((0, 1, 2, 3), weights=(35, 35, 20, 10))[0]

    def deal_product(self, ident: int, deal: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng(6, ident)
        product_id = rng.randint(1, max(self.sizes.products, 1))
        quantity = rng.randint(1, 20)
        price = float(rng.randint(2, 400) * 5)
        discount = rng.choice((0.0, 0.0, 5.0, 10.0))
        total = round(quantity * price * (1 - discount / 100), 2)
        return {
            "id": ident,
            "sum": total,
            "tax": 0.0,
            "deal_id": deal["id"],
            "name": names.PRODUCT_NAMES[(product_id - 1) % len(names.PRODUCT_NAMES)],
            "product_id": product_id,
            "product_variation_id": None,
            "order_nr": ident % 10,
            "add_time": deal["add_time"],
            "update_time": deal["add_time"],
            "comments": "",
            "currency": deal["currency"],
            "discount": discount,
            "discount_type": "percentage",
            "quantity": quantity,
            "item_price": price,
            "tax_method": "exclusive",
            "is_enabled": True,
            "billing_frequency": "one-time",
            "billing_frequency_cycles": None,
            "billing_start_date": None,
        }
