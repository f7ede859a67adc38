"""Organizations and persons."""

from __future__ import annotations

from typing import Any

from pipedrive_simulator.fields import FieldDef
from pipedrive_simulator.seed import SeedBase
from pipedrive_simulator.timeutil import from_epoch


class ContactGenerator(SeedBase):
    # -- organizations / persons ------------------------------------------------------------
    def organization(self, ident: int, custom_defs: list[FieldDef]) -> dict[str, Any]:
        rng = self.rng(2, ident)
        add, update = self.span(2, ident, self.sizes.organizations)
        name = self.org_name(ident)
        return {
            "id": ident,
            "name": name,
            "owner_id": self.owner(rng),
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "is_deleted": False,
            "visible_to": 3,
            "address": self.address(rng) if rng.random() < 0.85 else None,
            "label_ids": sorted(rng.sample((5, 6, 7), rng.randint(0, 1))),
            "website": f"https://{name.split()[0].lower()}{ident}.example.com"
            if rng.random() < 0.7
            else None,
            "linkedin": None,
            "industry": rng.choice((None, 1, 2, 3, 4)),
            "annual_revenue": rng.choice((None, 1_000_000, 25_000_000)),
            "employee_count": rng.choice((None, 10, 50, 250, 1000)),
            "custom_fields": self.custom_values(2, ident, custom_defs),
        }

    def person(self, ident: int, custom_defs: list[FieldDef]) -> dict[str, Any]:
        rng = self.rng(3, ident)
        add, update = self.span(3, ident, self.sizes.persons)
        first, last = self.person_name(ident)
        slug = f"{first}.{last}".lower().replace("'", "").replace("ü", "u")
        labels = ("work", "home", "other")
        n_emails = rng.choices((0, 1, 2, 3), weights=(5, 55, 30, 10))[0]
        n_phones = rng.choices((0, 1, 2, 3), weights=(20, 50, 25, 5))[0]
        org_id = (
            rng.randint(1, self.sizes.organizations)
            if self.sizes.organizations and rng.random() < 0.8
            else None
        )
        return {
            "id": ident,
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "owner_id": self.owner(rng),
            "org_id": org_id,
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "emails": [
                {
                    "value": f"{slug}{ident}@{('work', 'mail', 'example')[i]}.example.org",
                    "primary": i == 0,
                    "label": labels[i],
                }
                for i in range(n_emails)
            ],
            "phones": [
                {
                    "value": f"+372 5{rng.randint(100000, 9999999)}",
                    "primary": i == 0,
                    "label": labels[i],
                }
                for i in range(n_phones)
            ],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "postal_address": self.address(rng) if rng.random() < 0.3 else None,
            "notes": None,
            "im": [],
            "birthday": None,
            "job_title": rng.choice(("CEO", "CTO", "Head of Sales", "Buyer", "Engineer", None)),
            "custom_fields": self.custom_values(3, ident, custom_defs),
        }
