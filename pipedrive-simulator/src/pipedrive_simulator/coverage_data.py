"""The account's less central objects: call logs, lead labels and sources, filters, goals,
projects (with boards, phases, templates, tasks and project custom fields), deal installments,
roles, permission sets, the token user's mailbox threads and user permissions.

Each kind is a small ordered table (id -> record) seeded from the account's seed and sizes;
tests change them through :meth:`CoverageData.put` and :meth:`CoverageData.remove`. Records are
kept in the API's own shape (v1 or v2), with internal RFC 3339 timestamps.
"""

from __future__ import annotations

import uuid
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
