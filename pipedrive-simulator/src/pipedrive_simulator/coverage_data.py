"""The account's less central objects: call logs, lead labels and sources, filters, goals,
projects (with boards, phases, templates, tasks and project custom fields), deal installments,
roles, permission sets, the token user's mailbox threads and user permissions.

Each kind is a small ordered table (id -> record) seeded from the account's seed and sizes;
tests change them through :meth:`CoverageData.put` and :meth:`CoverageData.remove`. Records are
kept in the API's own shape (v1 or v2), with internal RFC 3339 timestamps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipedrive_simulator.fields import FieldDef, field_key
from pipedrive_simulator.timeutil import from_epoch, to_v1

if TYPE_CHECKING:
    from pipedrive_simulator.account import Account

KINDS = (
    "call_logs",
    "lead_labels",
    "lead_sources",
    "filters",
    "goals",
    "boards",
    "phases",
    "project_templates",
    "projects",
    "tasks",
    "installments",
    "roles",
    "permission_sets",
    "mail_threads",
    "organization_relationships",
)
LEAD_LABELS = (("Hot", "red"), ("Warm", "orange"), ("Cold", "blue"), ("Partner", "green"))
LEAD_SOURCES = ("Manually created", "Web forms", "API", "Prospector", "Chatbot", "Import")
FILTER_TYPES = ("deals", "leads", "org", "people", "products", "activity", "projects")
GOAL_TYPES = ("deals_won", "deals_progressed", "activities_completed", "deals_started")
BOARDS = (("Onboarding", ("Kick-off", "Setup", "Training", "Live")), ("Delivery", ("Plan", "Do")))
TEMPLATES = ("Standard onboarding", "Enterprise rollout", "Renewal review")
MAIL_FOLDERS = ("inbox", "drafts", "sent", "archive")
OUTCOMES = ("connected", "no_answer", "left_message", "left_voicemail", "busy")
PROJECT_CUSTOM_MIX = (
    ("varchar", "Project code"),
    ("enum", "Delivery model"),
    ("set", "Workstreams"),
    ("double", "Budget hours"),
    ("monetary", "Project budget"),
    ("date", "Go-live date"),
)
PROJECT_SYSTEM_FIELDS = (
    ("id", "ID", "int"),
    ("title", "Title", "varchar"),
    ("description", "Description", "text"),
    ("status", "Status", "status"),
    ("board_id", "Board", "int"),
    ("phase_id", "Phase", "int"),
    ("owner_id", "Owner", "user"),
    ("start_date", "Start date", "date"),
    ("end_date", "End date", "date"),
    ("add_time", "Created", "date"),
    ("update_time", "Updated", "date"),
)
PROJECT_LABEL_IDS = (1, 2, 3)
ROLE_NAMES: tuple[tuple[int, int | None, str], ...] = (
    (1, None, "Company"),
    (2, 1, "Sales"),
    (3, 1, "Customer success"),
)
PERMISSION_SETS = (
    (1, "Global admin", "sales", "admin"),
    (2, "Regular user", "sales", "regular"),
    (3, "Projects manager", "projects", "manager"),
)
USER_PERMISSIONS = (
    "can_add_custom_fields",
    "can_add_products",
    "can_bulk_edit_items",
    "can_delete_activities",
    "can_delete_deals",
    "can_edit_products",
    "can_export_data_from_lists",
    "can_merge_deals",
    "can_see_company_wide_statistics",
    "can_see_other_users",
    "can_use_api",
    "can_use_import",
)


# These objects grow with the account up to the size of this many deals (a million-deal
# account does not have 200,000 call logs in its seed).
MAX_SCALED_DEALS = 10_000


def _v1_times(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: (to_v1(v) if k in keys else v) for k, v in row.items()}


def _party(party: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": party["id"],
        "email_address": party["email_address"],
        "name": party["name"],
        "mail_message_party_id": party["id"],
    }


def lead_label_id(index: int) -> str:
    return str(uuid.UUID(int=0x1EAD0000 + index))


def permission_set_id(index: int) -> str:
    return str(uuid.UUID(int=index))


class CoverageData:
    """Seeded tables of the less central objects, one ordered dict per kind."""

    def __init__(self, account: Account) -> None:
        self.account = account
        gen = account.gen
        self.gen = gen
        self.lock = account.lock
        sizes = account.sizes
        self._deals = sizes.deals
        self._persons = sizes.persons
        self._orgs = sizes.organizations
        self._tables: dict[str, dict[Any, dict[str, Any]]] | None = None
        self.project_fields = self._project_field_defs()
        #: Each deal's participants once read or changed (seeded at first use).
        self._participants: dict[int, list[dict[str, Any]]] = {}
        self._participant_seq = 0
        #: Followers removed: (kind, record id, user id); the others are as seeded.
        self._unfollowed: set[tuple[str, int, int]] = set()
        #: Product variations removed (by id); the others are as seeded.
        self._removed_variations: set[int] = set()
        #: Marks a record changed (its ``update_time`` moves), set by the simulator.
        self.touch: Callable[[str, int], Any] | None = None

    @property
    def tables(self) -> dict[str, dict[Any, dict[str, Any]]]:
        """The tables, built at first use (a million-deal account starts as fast as before)."""
        with self.lock:
            if self._tables is None:
                self._tables = {kind: {} for kind in KINDS}
                self._build(min(self.account.sizes.deals, MAX_SCALED_DEALS))
            return self._tables

    # -- changes (tests and the control API) -------------------------------------------------
    def rows(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.tables[kind].values()]

    def put(self, kind: str, rec: dict[str, Any], key: str = "id") -> dict[str, Any]:
        """Create or replace a record; ``update_time`` (where the kind has one) moves to now."""
        with self.lock:
            table = self.tables[kind]
            old = table.get(rec[key])
            merged = {**(old or {}), **rec}
            if "update_time" in merged:
                merged["update_time"] = self.now()
            table[rec[key]] = merged
            return dict(merged)

    def remove(self, kind: str, ident: Any) -> None:
        with self.lock:
            del self.tables[kind][ident]

    def filters_since(self, since: str) -> list[tuple[str, dict[str, Any]]]:
        """Saved filters changed at or after ``since`` (as /v1/recents lists them): their
        update time and the v1 record."""
        return [
            (r["update_time"], _v1_times(r, ("add_time", "update_time")))
            for r in self.rows("filters")
            if r["update_time"] >= since
        ]

    def now(self) -> str:
        return from_epoch(self.account.clock.now.timestamp())

    # -- seeding ------------------------------------------------------------------------------
    def _time(self, code: int, index: int, count: int) -> tuple[str, str]:
        add, update = self.gen.span(code, index, count)
        return from_epoch(add), from_epoch(update)

    def _user(self, code: int, index: int) -> int:
        return self.gen.owner(self.gen.rng(code, index))

    def _project_field_defs(self) -> list[FieldDef]:
        added = from_epoch(self.gen.origin)
        option_seq = 9000
        defs = [
            FieldDef(
                id=i,
                key=key,
                name=name,
                field_type=ftype,
                is_custom=False,
                order_nr=i,
                add_time=added,
                update_time=added,
                entity="project",
            )
            for i, (key, name, ftype) in enumerate(PROJECT_SYSTEM_FIELDS, start=1)
        ]
        for serial, (ftype, name) in enumerate(PROJECT_CUSTOM_MIX):
            options = None
            if ftype in {"enum", "set"}:
                options = []
                for label in ("Option A", "Option B", "Option C"):
                    option_seq += 1
                    options.append({"id": option_seq, "label": label, "color": None})
            defs.append(
                FieldDef(
                    id=5000 + serial,
                    key=field_key(self.account.seed, "project", serial),
                    name=name,
                    field_type=ftype,
                    is_custom=True,
                    order_nr=100 + serial,
                    add_time=added,
                    update_time=added,
                    options=options,
                    entity="project",
                )
            )
        return defs

    def _build(self, deals: int) -> None:
        gen, t = self.gen, self.tables
        for i, (name, color) in enumerate(LEAD_LABELS, start=1):
            add, update = self._time(201, i, len(LEAD_LABELS))
            ident = lead_label_id(i)
            t["lead_labels"][ident] = {
                "id": ident,
                "name": name,
                "color": color,
                "add_time": add,
                "update_time": update,
            }
        for name in LEAD_SOURCES:
            t["lead_sources"][name] = {"name": name}
        n_calls = max(5, deals // 5)
        for i in range(1, n_calls + 1):
            rng = gen.rng(202, i)
            add, _ = self._time(202, i, n_calls)
            ident = f"{0xCA11000 + i:x}"
            t["call_logs"][ident] = {
                "id": ident,
                "user_id": self._user(202, i),
                "activity_id": rng.randint(1, max(1, deals * 2)),
                "subject": f"Call {i}",
                "duration": str(rng.randint(20, 1800)),
                "outcome": rng.choice(OUTCOMES),
                "from_phone_number": f"+372 5{rng.randint(100000, 999999)}",
                "to_phone_number": f"+372 6{rng.randint(100000, 999999)}",
                "start_time": add,
                "end_time": add,
                "person_id": rng.randint(1, max(1, self._persons)),
                "org_id": rng.randint(1, max(1, self._orgs)),
                "deal_id": rng.randint(1, max(1, deals)),
                "lead_id": None,
                "note": rng.choice((None, "Asked for a quote", "Call back next week")),
                "has_recording": rng.random() < 0.3,
                "company_id": 15043420,
            }
        for i, ftype in enumerate(FILTER_TYPES, start=1):
            add, update = self._time(203, i, len(FILTER_TYPES))
            t["filters"][i] = {
                "id": i,
                "name": f"My {ftype} filter",
                "active_flag": True,
                "type": ftype,
                "temporary_flag": None,
                "user_id": self._user(203, i),
                "add_time": add,
                "update_time": update,
                "visible_to": "3" if i % 2 else "1",
                "custom_view_id": 100 + i,
            }
        start = from_epoch(self.gen.start)[:10]
        year = start[:4]
        for i, kind in enumerate(GOAL_TYPES, start=1):
            ident = f"{0x60A1000 + i:x}"
            t["goals"][ident] = {
                "id": ident,
                "owner_id": self._user(204, i),
                "title": f"{kind.replace('_', ' ').capitalize()} {year}",
                "type": {"name": kind, "params": {"pipeline_id": [1]}},
                "assignee": {"id": self._user(204, i), "type": "person"},
                "interval": "monthly" if i % 2 else "quarterly",
                "duration": {"start": f"{year}-01-01", "end": f"{year}-12-31"},
                "expected_outcome": {"target": 10 * i, "tracking_metric": "quantity"},
                "is_active": i != len(GOAL_TYPES),
                "report_ids": [f"r{i}"],
            }
        phase_id = 0
        for b, (board, phases) in enumerate(BOARDS, start=1):
            add, update = self._time(205, b, len(BOARDS))
            t["boards"][b] = {
                "id": b,
                "name": board,
                "order_nr": b,
                "add_time": add,
                "update_time": update,
            }
            for n, phase in enumerate(phases, start=1):
                phase_id += 1
                t["phases"][phase_id] = {
                    "id": phase_id,
                    "name": phase,
                    "board_id": b,
                    "order_nr": n,
                    "add_time": add,
                    "update_time": update,
                }
        for i, title in enumerate(TEMPLATES, start=1):
            add, update = self._time(206, i, len(TEMPLATES))
            t["project_templates"][i] = {
                "id": i,
                "title": title,
                "description": f"{title} template",
                "projects_board_id": 1 + i % len(BOARDS),
                "owner_id": self._user(206, i),
                "add_time": add,
                "update_time": update,
            }
        self._build_projects(deals)
        self._build_installments(deals)
        for role_id, parent, role_name in ROLE_NAMES:
            t["roles"][role_id] = {
                "id": role_id,
                "parent_role_id": parent,
                "name": role_name,
                "active_flag": True,
                "level": 1 if parent is None else 2,
            }
        for set_id, set_name, app, kind in PERMISSION_SETS:
            key = permission_set_id(set_id)
            t["permission_sets"][key] = {
                "id": key,
                "name": set_name,
                "description": f"{set_name} permissions",
                "app": app,
                "type": kind,
            }
        self._build_mail(deals)
        self._build_relationships()

    def _build_projects(self, deals: int) -> None:
        gen, t = self.gen, self.tables
        custom = [f for f in self.project_fields if f.is_custom]
        n_projects = max(5, deals // 25)
        task_id = 0
        for i in range(1, n_projects + 1):
            rng = gen.rng(207, i)
            add, update = self._time(207, i, n_projects)
            board = 1 + i % len(BOARDS)
            phases = [p for p in t["phases"].values() if p["board_id"] == board]
            archived = i % 7 == 3
            values = {
                f.key: gen.custom_value(rng, f, gen.start - 86400 * 30)
                if rng.random() < 0.8
                else None
                for f in custom
            }
            t["projects"][i] = {
                "id": i,
                "title": f"Project {i}",
                "description": None if i % 3 else f"Delivery of order {i}",
                "status": "completed" if i % 5 == 0 else "open",
                "board_id": board,
                "phase_id": rng.choice(phases)["id"],
                "owner_id": self._user(207, i),
                "start_date": add[:10],
                "end_date": None,
                "deal_ids": sorted(rng.sample(range(1, deals + 1), min(deals, rng.randint(0, 2)))),
                "person_ids": [rng.randint(1, max(1, self._persons))],
                "org_ids": [rng.randint(1, max(1, self._orgs))],
                "label_ids": sorted(rng.sample(PROJECT_LABEL_IDS, rng.randint(0, 2))),
                "health_status": None,
                "add_time": add,
                "update_time": update,
                "status_change_time": add,
                "archive_time": update if archived else None,
                "custom_fields": values,
            }
            for k in range(rng.randint(1, 3)):
                task_id += 1
                t["tasks"][task_id] = {
                    "id": task_id,
                    "title": f"Task {k + 1} of project {i}",
                    "creator_id": self._user(208, task_id),
                    "description": None,
                    "project_id": i,
                    "is_done": rng.random() < 0.4,
                    "is_milestone": k == 0,
                    "due_date": update[:10],
                    "start_date": add[:10],
                    "parent_task_id": None,
                    "assignee_ids": [self._user(208, task_id)],
                    "priority": rng.choice((None, 1, 2, 3)),
                    "add_time": add,
                    "update_time": update,
                    "marked_as_done_time": None,
                }

    def _build_installments(self, deals: int) -> None:
        ident = 0
        # Installments belong to deals with products (a bounded sample, so a million-deal
        # account starts as fast as before).
        for deal_id in range(3, min(deals, 5000) + 1, 10):
            if not self.account.line_items_of(deal_id):
                continue
            rng = self.gen.rng(209, deal_id)
            for k in range(rng.randint(1, 3)):
                ident += 1
                self.tables["installments"][ident] = {
                    "id": ident,
                    "amount": float(rng.randint(1, 40) * 250),
                    "billing_date": f"2026-{1 + k * 3:02d}-01",
                    "description": f"Installment {k + 1}",
                    "deal_id": deal_id,
                }

    def _build_mail(self, deals: int) -> None:
        gen = self.gen
        me = gen.user_ids[0]
        n_threads = max(8, deals // 10)
        for i in range(1, n_threads + 1):
            rng = gen.rng(210, i)
            add, update = self._time(210, i, n_threads)
            folder = MAIL_FOLDERS[i % len(MAIL_FOLDERS)]
            party = {"id": i, "email_address": f"contact{i}@example.com", "name": f"Contact {i}"}
            self.tables["mail_threads"][i] = {
                "id": i,
                "account_id": "simulated-mailbox",
                "user_id": me,
                "subject": f"Re: proposal {i}",
                "snippet": "Thanks for the proposal",
                "read_flag": int(rng.random() < 0.7),
                "has_attachments_flag": int(rng.random() < 0.2),
                "deleted_flag": 0,
                "synced_flag": 1,
                "smart_bcc_flag": 0,
                "parties": {"to": [party], "from": [party]},
                "folders": [folder],
                "message_count": rng.randint(1, 6),
                "has_draft_flag": int(folder == "drafts"),
                "has_sent_flag": int(folder == "sent"),
                "archived_flag": int(folder == "archive"),
                "shared_flag": 0,
                "last_message_timestamp": update,
                "first_message_timestamp": add,
                "add_time": add,
                "update_time": update,
                "deal_id": rng.randint(1, max(1, deals)) if rng.random() < 0.5 else None,
                "lead_id": None,
            }

    def _build_relationships(self) -> None:
        """Every fifth organization is the parent of the one before it; every seventh is
        related to the first."""
        ident = 0
        for org in range(2, max(2, self._orgs) + 1):
            links = []
            if org % 5 == 0:
                links.append(("parent", org, org - 1))
            if org % 7 == 0 and org != 1:
                links.append(("related", org, 1))
            for kind, owner, linked in links:
                ident += 1
                add, update = self._time(213, ident, max(1, self._orgs // 5))
                self.tables["organization_relationships"][ident] = {
                    "id": ident,
                    "type": kind,
                    "rel_owner_org_id": owner,
                    "rel_linked_org_id": linked,
                    "add_time": add,
                    "update_time": update,
                    "active_flag": "true",
                }

    # -- per-record lists: deal participants and discounts, thread messages -------------------
    def participants(self, deal: dict[str, Any]) -> list[dict[str, Any]]:
        """A deal's participants: its contact person, and for every fourth deal one more."""
        with self.lock:
            found = self._participants.get(deal["id"])
            if found is None:
                people = []
                if deal.get("person_id"):
                    people.append(deal["person_id"])
                extra = 1 + deal["id"] * 7 % max(1, self._persons)
                if deal["id"] % 4 == 0 and extra not in people:
                    people.append(extra)
                found = [
                    {
                        "id": deal["id"] * 10 + n,
                        "person_id": person,
                        "add_time": deal["add_time"],
                        "active_flag": True,
                    }
                    for n, person in enumerate(people, start=1)
                ]
                self._participants[deal["id"]] = found
            return [dict(p) for p in found]

    def add_participant(self, deal: dict[str, Any], person_id: int) -> dict[str, Any]:
        """Add a participant (the deal's ``update_time`` moves, as the API's does)."""
        with self.lock:
            current = self.participants(deal)
            self._participant_seq += 1
            row = {
                "id": 10_000_000 + self._participant_seq,
                "person_id": person_id,
                "add_time": self.now(),
                "active_flag": True,
            }
            self._participants[deal["id"]] = [*current, row]
            self._touch("deals", deal["id"])
            return dict(row)

    def remove_participant(self, deal: dict[str, Any], participant_id: int) -> None:
        with self.lock:
            current = self.participants(deal)
            kept = [p for p in current if p["id"] != participant_id]
            if len(kept) == len(current):
                raise KeyError(participant_id)
            self._participants[deal["id"]] = kept
            self._touch("deals", deal["id"])

    # -- followers of deals, persons, organizations and products -----------------------------
    def followers(self, kind: str, rec: dict[str, Any]) -> list[dict[str, Any]]:
        """A record's followers: its owner, and for every third record one more user (less
        the ones removed)."""
        users = self.gen.user_ids
        owner = rec.get("owner_id") or users[0]
        rows = [{"user_id": owner, "add_time": rec["add_time"]}]
        extra = users[rec["id"] % len(users)]
        if rec["id"] % 3 == 0 and extra != owner:
            rows.append({"user_id": extra, "add_time": rec["update_time"]})
        with self.lock:
            return [r for r in rows if (kind, rec["id"], r["user_id"]) not in self._unfollowed]

    def remove_follower(self, kind: str, rec: dict[str, Any], user_id: int) -> None:
        """Remove a follower (the record's ``update_time`` moves, as for a participant)."""
        with self.lock:
            if not any(r["user_id"] == user_id for r in self.followers(kind, rec)):
                raise KeyError(user_id)
            self._unfollowed.add((kind, rec["id"], user_id))
            self._touch(kind, rec["id"])

    def variations(self, product: dict[str, Any]) -> list[dict[str, Any]]:
        """Every third product has two variations (ids product_id * 10 + 1, + 2), less the
        ones removed."""
        rows = [
            {
                "id": product["id"] * 10 + k,
                "name": f"{product['name']} ({size})",
                "product_id": product["id"],
                "prices": [
                    {
                        "price": 10.0 * k,
                        "currency": "EUR",
                        "cost": 5.0 * k,
                        "notes": None,
                        "product_variation_id": product["id"] * 10 + k,
                    }
                ],
            }
            for k, size in ((1, "S"), (2, "L"))
            if product["id"] % 3 == 0
        ]
        with self.lock:
            return [r for r in rows if r["id"] not in self._removed_variations]

    def remove_variation(self, product: dict[str, Any], variation_id: int) -> None:
        """Remove a product variation (the product's ``update_time`` moves)."""
        with self.lock:
            if not any(r["id"] == variation_id for r in self.variations(product)):
                raise KeyError(variation_id)
            self._removed_variations.add(variation_id)
            self._touch("products", product["id"])

    def _touch(self, stream: str, ident: int) -> None:
        if self.touch is not None:
            self.touch(stream, ident)

    def discounts(self, deal: dict[str, Any]) -> list[dict[str, Any]]:
        """Every third deal has a discount; every sixth a second one (of an amount)."""
        rows = []
        for n in (1, 2):
            if deal["id"] % (3 * n) != 0:
                continue
            rows.append(
                {
                    "id": str(uuid.UUID(int=0xD15C << 64 | deal["id"] << 4 | n)),
                    "description": f"Discount {n}",
                    "type": "percentage" if n == 1 else "amount",
                    "amount": 10.0 if n == 1 else 250.0,
                    "deal_id": deal["id"],
                    "created_at": deal["add_time"],
                    "created_by": deal.get("owner_id") or self.gen.user_ids[0],
                    "updated_at": deal["add_time"],
                    "updated_by": deal.get("owner_id") or self.gen.user_ids[0],
                }
            )
        return rows

    def mail_messages(self, thread: dict[str, Any]) -> list[dict[str, Any]]:
        """The thread's ``message_count`` messages, alternating between the contact and the
        token user; every second one with a cc, every third with a bcc."""
        me = self.gen.user_ids[0]
        contact = thread["parties"]["to"][0]
        mine = {"id": 900_000 + me, "email_address": f"user{me}@example.com", "name": "Me"}
        rows = []
        for k in range(1, thread["message_count"] + 1):
            inbound = k % 2 == 1
            sender, receiver = (contact, mine) if inbound else (mine, contact)
            cc_party = {
                "id": 800_000 + thread["id"],
                "email_address": f"cc{thread['id']}@example.com",
                "name": "Colleague",
            }
            bcc_party = {
                "id": 700_000 + thread["id"],
                "email_address": f"bcc{thread['id']}@example.com",
                "name": "Archive",
            }
            rows.append(
                {
                    "id": thread["id"] * 100 + k,
                    "account_id": thread["account_id"],
                    "user_id": me,
                    "subject": thread["subject"],
                    "snippet": f"Message {k} of thread {thread['id']}",
                    "mail_thread_id": thread["id"],
                    "from": [_party(sender)],
                    "to": [_party(receiver)],
                    "cc": [_party(cc_party)] if k % 2 == 0 else [],
                    "bcc": [_party(bcc_party)] if k % 3 == 0 else [],
                    "body_url": f"https://example.com/mail/{thread['id']}/{k}",
                    "read_flag": 1,
                    "has_attachments_flag": 0,
                    "deleted_flag": 0,
                    "synced_flag": 1,
                    "smart_bcc_flag": 0,
                    "sent_flag": int(not inbound),
                    "draft_flag": 0,
                    "message_time": thread["first_message_timestamp"],
                    "add_time": thread["add_time"],
                    "update_time": thread["update_time"],
                }
            )
        return rows

    # -- derived ------------------------------------------------------------------------------
    def role_of(self, user: dict[str, Any]) -> int:
        """Role ids follow the users' own ``role_id``."""
        return int(user.get("role_id") or 1)

    def permission_set_of(self, user: dict[str, Any]) -> str:
        return permission_set_id(1 if user.get("is_admin") else 2)

    def user_permissions(self, user_id: int) -> dict[str, bool]:
        admin = user_id == self.gen.user_ids[0]
        rng = self.gen.rng(211, user_id)
        return {name: admin or rng.random() < 0.6 for name in USER_PERMISSIONS}

    def role_settings(self, role_id: int) -> dict[str, int]:
        level = 1 if role_id == 1 else 3
        return {
            "deal_default_visibility": level,
            "lead_default_visibility": level,
            "org_default_visibility": level,
            "person_default_visibility": level,
            "product_default_visibility": level,
            "deal_access_level": 1 + role_id % 3,
            "org_access_level": 1,
            "person_access_level": 1,
            "product_access_level": 1,
        }

    def goal_progress(self, goal_id: str) -> int:
        return self.gen.rng(212, int(goal_id, 16)).randint(0, 100)
