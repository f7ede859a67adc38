"""Activities, notes, files, leads and users."""

from __future__ import annotations

import uuid
from typing import Any

from pipedrive_simulator import names
from pipedrive_simulator.fields import FieldDef
from pipedrive_simulator.seed import ACTIVITY_TYPES, SeedBase
from pipedrive_simulator.timeutil import from_epoch


class WorkGenerator(SeedBase):
    # -- activities, notes, files, leads, users ---------------------------------------------
    def activity(self, ident: int) -> dict[str, Any]:
        rng = self.rng(7, ident)
        add, update = self.span(7, ident, self.sizes.activities)
        type_name, key, _ = rng.choice(ACTIVITY_TYPES)
        deal_id = (
            rng.randint(1, self.sizes.deals) if self.sizes.deals and rng.random() < 0.8 else None
        )
        person_id = (
            rng.randint(1, self.sizes.persons)
            if self.sizes.persons and rng.random() < 0.7
            else None
        )
        done = add < self.start - 7 * 86400 and rng.random() < 0.8
        due = add + rng.randint(0, 21) * 86400
        return {
            "id": ident,
            "subject": f"{type_name} #{ident}",
            "type": key,
            "owner_id": self.owner(rng),
            "creator_user_id": self.owner(rng),
            "is_deleted": False,
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "deal_id": deal_id,
            "lead_id": None,
            "person_id": person_id,
            "org_id": rng.randint(1, self.sizes.organizations)
            if self.sizes.organizations and rng.random() < 0.6
            else None,
            "project_id": None,
            "due_date": from_epoch(due)[:10],
            "due_time": f"{rng.randint(8, 17):02d}:00" if rng.random() < 0.7 else None,
            "duration": rng.choice(("00:30", "01:00", None)),
            "busy": rng.random() < 0.5,
            "done": done,
            "marked_as_done_time": from_epoch(min(due, update)) if done else None,
            "location": None,
            "participants": [{"person_id": person_id, "primary": True}] if person_id else [],
            # Meetings invite their person (no extra random draws: other values stay as they were).
            "attendees": [
                {
                    "email": f"person{person_id}@example.org",
                    "name": None,
                    "status": "accepted",
                    "is_organizer": False,
                    "person_id": person_id,
                    "user_id": None,
                }
            ]
            if key == "meeting" and person_id
            else [],
            "conference_meeting_client": None,
            "conference_meeting_url": None,
            "conference_meeting_id": None,
            "public_description": None,
            "priority": None,
            "note": rng.choice(names.NOTE_SNIPPETS) if rng.random() < 0.3 else None,
        }

    def note(self, ident: int) -> dict[str, Any]:
        rng = self.rng(8, ident)
        add, update = self.span(8, ident, self.sizes.notes)
        deal_id = (
            rng.randint(1, self.sizes.deals) if self.sizes.deals and rng.random() < 0.7 else None
        )
        person_id = (
            rng.randint(1, self.sizes.persons)
            if self.sizes.persons and rng.random() < 0.5
            else None
        )
        org_id = (
            rng.randint(1, self.sizes.organizations)
            if self.sizes.organizations and rng.random() < 0.4
            else None
        )
        if deal_id is None and person_id is None and org_id is None and self.sizes.persons:
            person_id = rng.randint(1, self.sizes.persons)
        return {
            "id": ident,
            "user_id": self.owner(rng),
            "deal_id": deal_id,
            "person_id": person_id,
            "org_id": org_id,
            "lead_id": None,
            "content": rng.choice(names.NOTE_SNIPPETS),
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "active_flag": True,
            "pinned_to_deal_flag": deal_id is not None and rng.random() < 0.1,
            "pinned_to_person_flag": False,
            "pinned_to_organization_flag": False,
            "pinned_to_lead_flag": False,
            "last_update_user_id": None,
        }

    def file(self, ident: int) -> dict[str, Any]:
        rng = self.rng(9, ident)
        add, update = self.span(9, ident, self.sizes.files)
        ext, ftype = rng.choice(
            (("pdf", "pdf"), ("png", "img"), ("docx", "doc"), ("xlsx", "spreadsheet"))
        )
        name = (
            f"{rng.choice(('proposal', 'contract', 'quote', 'screenshot', 'notes'))}-{ident}.{ext}"
        )
        return {
            "id": ident,
            "user_id": self.owner(rng),
            "deal_id": rng.randint(1, self.sizes.deals) if self.sizes.deals else None,
            "person_id": None,
            "org_id": None,
            "product_id": None,
            "activity_id": None,
            "lead_id": None,
            "project_id": None,
            "log_id": None,
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "file_name": name,
            "file_type": ftype,
            "file_size": rng.randint(10_000, 5_000_000),
            "active_flag": True,
            "inline_flag": False,
            "remote_location": "s3",
            "remote_id": f"{ident:08x}-{name}",
            "cid": "",
            "s3_bucket": "",
            "mail_message_id": "",
            "mail_template_id": "",
            "name": name,
            "description": "",
        }

    def lead_id(self, serial: int) -> str:
        return str(uuid.UUID(int=self.rng(10, serial).getrandbits(128), version=4))

    def lead(self, serial: int, custom_defs: list[FieldDef]) -> dict[str, Any]:
        rng = self.rng(11, serial)
        add, update = self.span(11, serial, self.sizes.leads)
        owner = self.owner(rng)
        person_id = (
            rng.randint(1, self.sizes.persons)
            if self.sizes.persons and rng.random() < 0.8
            else None
        )
        org_id = (
            rng.randint(1, self.sizes.organizations)
            if self.sizes.organizations and rng.random() < 0.5
            else None
        )
        if person_id is None and org_id is None:
            org_id = 1 if self.sizes.organizations else None
        lead_id = self.lead_id(serial)
        label_rng = self.rng(213, serial)  # its own stream: the other values stay as they were
        return {
            "id": lead_id,
            "title": f"{self.org_name(org_id) if org_id else 'Inbound'} lead",
            "owner_id": owner,
            "creator_id": owner,
            # Lead labels (see coverage_data.LEAD_LABELS): ids 0x1ead0001 .. 0x1ead0004.
            "label_ids": [
                str(uuid.UUID(int=0x1EAD0000 + k))
                for k in sorted(label_rng.sample((1, 2, 3, 4), label_rng.choice((0, 0, 1, 2))))
            ],
            "person_id": person_id,
            "organization_id": org_id,
            "source_name": rng.choice(("Manually created", "Web forms", "API")),
            "origin": "ManuallyCreated",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "is_archived": rng.random() < 0.05,
            "archive_time": None,
            "source_deal_id": None,
            "was_seen": rng.random() < 0.7,
            "value": {"amount": rng.randint(1, 100) * 100, "currency": "EUR"}
            if rng.random() < 0.6
            else None,
            "expected_close_date": None,
            "next_activity_id": None,
            "add_time": from_epoch(add),
            "update_time": from_epoch(update),
            "visible_to": "3",
            "cc_email": f"company+{serial}+lead@pipedrivemail.example.com",
            "custom_fields": self.custom_values(11, serial, custom_defs),
            "_serial": serial,
        }

    def user(self, index: int) -> dict[str, Any]:
        rng = self.rng(12, index)
        first, last = rng.choice(names.FIRST_NAMES), rng.choice(names.LAST_NAMES)
        created = from_epoch(self.origin + index * 3600)
        return {
            "id": self.user_ids[index - 1],
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{index}@company.example.com",
            "lang": 1,
            "locale": "en_US",
            "timezone_name": "Europe/Tallinn",
            "timezone_offset": "+03:00",
            "default_currency": "EUR",
            "icon_url": None,
            "active_flag": index == 1 or rng.random() < 0.92,
            "is_deleted": False,
            "is_admin": 1 if index == 1 else 0,
            "role_id": 1,
            "created": created,
            "has_created_company": index == 1,
            "is_you": index == 1,
            "access": [
                {
                    "app": "sales",
                    "admin": index == 1,
                    "permission_set_id": str(uuid.UUID(int=1 if index == 1 else 2)),
                }
            ],
            "phone": None,
            "modified": created,
            "last_login": from_epoch(self.start - rng.randint(0, 30) * 86400),
        }
