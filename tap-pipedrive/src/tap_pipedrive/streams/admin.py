"""Roles (with their members and settings), permission sets (with their members) and each
user's permissions: the account's access model, read in full."""

from __future__ import annotations

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.setup import UsersStream


class RolesStream(PipedriveStream):
    name = "roles"
    refreshed_on_interval = True
    path = "/api/v1/roles"
    deleted_flags = (("active_flag", False),)
    carried_keys = ("id",)  # for the per-role streams, also when roles are not selected


class PermissionSetsStream(PipedriveStream):
    name = "permission_sets"
    refreshed_on_interval = True
    path = "/api/v1/permissionSets"
    paginated = False
    deleted_flags = ()
    carried_keys = ("id",)


#: Members and settings of each role and permission set, and each user's permissions.
ADMIN_PER_PARENT_STREAMS = PerParentStream.table(
    # stream, parent stream, primary keys[, paginated]
    ("role_assignments", RolesStream, ("role_id", "user_id")),
    ("role_settings", RolesStream, ("role_id",), False),
    ("permission_set_assignments", PermissionSetsStream, ("permission_set_id", "user_id")),
    ("user_permissions", UsersStream, ("user_id",), False),
)
