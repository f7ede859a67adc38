"""The seeded account's foundations: sizes, deterministic randomness and timestamps, names,
custom-field values, pipelines and stages. Entity builders live in the gen_* modules."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipedrive_simulator import names
from pipedrive_simulator.fields import CUSTOM_MIX, OPTION_LABELS, FieldDef, field_key
from pipedrive_simulator.timeutil import from_epoch

MASK64 = (1 << 64) - 1
POOL_SIZE = 2048
SPAN_SECONDS = 3 * 365 * 86400  # the account's history: three years before the clock's start
USER_ID_BASE = 25_760_000
CURRENCIES = (
    (1, "EUR", "Euro", "€"),
    (2, "USD", "US Dollar", "$"),
    (3, "GBP", "British Pound", "£"),
    (4, "SEK", "Swedish Krona", "kr"),
    (5, "JPY", "Japanese Yen", "¥"),
)
ACTIVITY_TYPES = (
    ("Call", "call", "call"),
    ("Meeting", "meeting", "meeting"),
    ("Task", "task", "task"),
    ("Deadline", "deadline", "deadline"),
    ("Email", "email", "email"),
    ("Lunch", "lunch", "lunch"),
    ("Demo", "demo", "presentation"),
)
PIPELINES = (
    ("Sales", ("Qualified", "Contact made", "Demo scheduled", "Proposal made", "Negotiation")),
    ("Partnerships", ("Intro", "Evaluation", "Agreement drafted", "Signed")),
    ("Renewals", ("Upcoming", "In discussion", "Quote sent", "Verbal yes")),
)
STAGE_PROBABILITY = (10, 25, 40, 60, 80, 90)


@dataclass(frozen=True)
class Sizes:
    deals: int
    persons: int
    organizations: int
    activities: int
    notes: int
    products: int
    leads: int
    files: int
    users: int

    @classmethod
    def scaled(cls, deals: int | None, **given: int | None) -> Sizes:
        d = 500 if deals is None else deals
        if d < 0:
            raise ValueError("deals must be >= 0")
        defaults = {
            "persons": max(20, d * 6 // 5),
            "organizations": max(10, d * 2 // 5),
            "activities": d * 2,
            "notes": d,
            "products": min(max(15, d // 10), 5000),
            "leads": max(5, d * 3 // 10),
            "files": d // 10,
            "users": min(max(5, d // 40), 300),
        }
        unknown = set(given) - set(defaults)
        if unknown:
            raise ValueError(f"unknown entity size(s): {', '.join(sorted(unknown))}")
        for key, value in given.items():
            if value is not None:
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
                defaults[key] = value
        return cls(deals=d, **defaults)


class SeedBase:
    """Seeded randomness, timestamps, names, custom-field values, pipelines and stages."""

    def __init__(self, seed: int, sizes: Sizes, start: datetime) -> None:
        self.seed = seed
        self.sizes = sizes
        self.start = int(start.timestamp())
        self.origin = self.start - SPAN_SECONDS
        self.pipelines: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = []
        self.stages_by_pipeline: dict[int, list[int]] = {}
        self._build_pipelines()
        self.user_ids = [USER_ID_BASE + i for i in range(1, sizes.users + 1)]
        self._pools: dict[int, list[dict[str, Any]]] = {}
        self._pooled: set[int] = set()

    # -- helpers ----------------------------------------------------------------------------
    def rng(self, code: int, ident: int) -> random.Random:
        return random.Random((self.seed * 1_000_003 + code) * 10_000_019 + ident)

    def uniform(self, code: int, ident: int, k: int) -> float:
        """A deterministic uniform [0, 1) from integer mixing (splitmix64): far cheaper than
        seeding a Random, which matters when a million timestamps are sorted."""
        z = (
            self.seed * 0x9E3779B97F4A7C15
            + code * 0xBF58476D1CE4E5B9
            + ident * 0x94D049BB133111EB
            + k
        ) & MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return ((z ^ (z >> 31)) >> 11) / 9007199254740992.0

    def span(self, code: int, index: int, count: int) -> tuple[int, int]:
        """(add, update) epoch seconds: ids grow with creation time; updates trail behind."""
        slot = SPAN_SECONDS / max(count, 1)
        u = self.uniform
        add = int(self.origin + (index - 1) * slot + u(code, index, 1) * slot * 0.9)
        age = self.start - add
        roll = u(code, index, 2)
        if roll < 0.15:
            update = add
        elif roll < 0.85:
            update = add + int(age * u(code, index, 3) * 0.5)
        else:
            update = self.start - int(u(code, index, 3) * min(age, 30 * 86400))
        return add, min(max(update, add), self.start)

    def owner(self, rng: random.Random) -> int:
        # A few sales reps own most records.
        n = len(self.user_ids)
        return self.user_ids[min(int(rng.paretovariate(1.5)) - 1, n - 1)]

    # -- custom fields ----------------------------------------------------------------------
    def custom_field_defs(
        self, entity: str, first_id: int, option_seq: list[int]
    ) -> list[FieldDef]:
        out = []
        added = from_epoch(self.origin)
        for serial, (ftype, fname) in enumerate(CUSTOM_MIX[entity]):
            options = None
            if ftype in {"enum", "set"}:
                options = []
                for label in OPTION_LABELS.get(fname, ("Option A", "Option B", "Option C")):
                    option_seq[0] += 1
                    options.append({"id": option_seq[0], "label": label, "color": None})
            out.append(
                FieldDef(
                    id=first_id + serial,
                    key=field_key(self.seed, entity, serial),
                    name=fname,
                    field_type=ftype,
                    is_custom=True,
                    order_nr=100 + serial,
                    add_time=added,
                    update_time=added,
                    options=options,
                    entity=entity,
                )
            )
        return out

    def custom_value(self, rng: random.Random, fdef: FieldDef, add: int) -> Any:
        t = fdef.field_type
        if t in {"varchar", "varchar_auto"}:
            return f"{rng.choice(names.COMPANY_A)} {rng.randint(100, 999)}"
        if t == "text":
            return rng.choice(names.NOTE_SNIPPETS)
        if t == "phone":
            return f"+372 5{rng.randint(100000, 9999999)}"
        if t == "double":
            return round(rng.uniform(0, 500), 2)
        if t == "monetary":
            return {
                "value": rng.randint(1, 200) * 250,
                "currency": rng.choice(("EUR", "USD")),
            }
        if t == "enum":
            return rng.choice(fdef.options or [{"id": None}])["id"]
        if t == "set":
            opts = [o["id"] for o in fdef.options or ()]
            return sorted(rng.sample(opts, rng.randint(1, min(3, len(opts)))))
        if t == "user":
            return rng.choice(self.user_ids)
        if t == "org":
            return rng.randint(1, max(self.sizes.organizations, 1))
        if t == "people":
            return rng.randint(1, max(self.sizes.persons, 1))
        if t == "date":
            return from_epoch(add + rng.randint(-90, 180) * 86400)[:10]
        if t == "daterange":
            begin = add + rng.randint(0, 60) * 86400
            return {
                "start": from_epoch(begin)[:10],
                "end": from_epoch(begin + rng.randint(7, 90) * 86400)[:10],
            }
        if t == "time":
            return {
                "value": f"{rng.randint(8, 17):02d}:{rng.choice((0, 30)):02d}:00",
                "timezone_id": 1,
                "timezone_name": "Europe/Tallinn",
            }
        if t == "timerange":
            h = rng.randint(7, 11)
            return {
                "start": f"{h:02d}:00:00",
                "end": f"{h + 8:02d}:00:00",
                "timezone_id": 1,
                "timezone_name": "Europe/Tallinn",
            }
        if t == "address":
            return self.address(rng)
        return None

    def is_pooled(self, values: dict[str, Any]) -> bool:
        """Whether a custom-field value set is one of the shared pool's (never mutated)."""
        return id(values) in self._pooled

    def custom_values(self, code: int, ident: int, defs: list[FieldDef]) -> dict[str, Any]:
        """Custom-field values drawn from a seeded pool of value sets (building ~40 values per
        record would dominate serving a million-deal account)."""
        pool = self._pools.get(code)
        if pool is None:
            rng = self.rng(100 + code, 0)
            base = self.origin + SPAN_SECONDS // 2
            pool = [
                {
                    f.key: (
                        self.custom_value(rng, f, base + rng.randint(-400, 400) * 86400)
                        if rng.random() < 0.6
                        else None
                    )
                    for f in defs
                }
                for _ in range(POOL_SIZE)
            ]
            self._pools[code] = pool
            self._pooled.update(id(values) for values in pool)
        # Shared, never mutated in place: mutations deep-copy a record before changing it.
        return pool[int(self.uniform(code, ident, 9) * POOL_SIZE)]

    def address(self, rng: random.Random) -> dict[str, Any]:
        city, area, country, postal = rng.choice(names.CITIES)
        number = str(rng.randint(1, 120))
        route = rng.choice(names.STREETS)
        formatted = f"{route} {number}, {postal} {city}, {country}"
        return {
            "value": formatted,
            "country": country,
            "admin_area_level_1": area,
            "admin_area_level_2": None,
            "locality": city,
            "sublocality": None,
            "route": route,
            "street_number": number,
            "subpremise": None,
            "postal_code": postal,
            "formatted_address": formatted,
        }

    # -- pipelines and stages ---------------------------------------------------------------
    def _build_pipelines(self) -> None:
        stamp = from_epoch(self.origin)
        stage_id = 0
        for pid, (pname, stage_names) in enumerate(PIPELINES, start=1):
            self.pipelines.append(
                {
                    "id": pid,
                    "name": pname,
                    "order_nr": pid,
                    "is_deleted": False,
                    "is_deal_probability_enabled": pid == 1,
                    "add_time": stamp,
                    "update_time": stamp,
                }
            )
            ids = []
            for order, sname in enumerate(stage_names, start=1):
                stage_id += 1
                ids.append(stage_id)
                self.stages.append(
                    {
                        "id": stage_id,
                        "order_nr": order,
                        "name": sname,
                        "is_deleted": False,
                        "deal_probability": STAGE_PROBABILITY[min(order - 1, 5)],
                        "pipeline_id": pid,
                        "is_deal_rot_enabled": order > 2,
                        "days_to_rotten": 30 if order > 2 else None,
                        "add_time": stamp,
                        "update_time": stamp,
                    }
                )
            self.stages_by_pipeline[pid] = ids

    # -- names shared across entities ----------------------------------------------------
    def org_name(self, ident: int) -> str:
        rng = self.rng(99, ident)
        parts = (names.COMPANY_A, names.COMPANY_B, names.COMPANY_SUFFIX)
        return " ".join(rng.choice(words) for words in parts)

    def person_name(self, ident: int) -> tuple[str, str]:
        rng = self.rng(98, ident)
        return rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
