"""Roles (with their members and settings), permission sets (with their members) and each
user's permissions: the account's access model, read in full."""

from __future__ import annotations

import typing as t

from tap_pipedrive.client import PipedriveStream
from tap_pipedrive.streams.bases import PerParentStream
from tap_pipedrive.streams.setup import UsersStream


class RolesStream(PipedriveStream):
    name = "roles"
    refreshed_on_interval = True
    path = "/api/v1/roles"
    deleted_flags = (("active_flag", False),)
    carried_keys = ("id",)  # for the per-role streams, also when roles are not selected


class RoleAssignmentsStream(PerParentStream):
    name = "role_assignments"
    path = "/api/v1/roles/{id}/assignments"
    parent_stream_type = RolesStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("role_id", "user_id")


class RoleSettingsStream(PerParentStream):
    name = "role_settings"
    path = "/api/v1/roles/{id}/settings"
    parent_stream_type = RolesStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("role_id",)
    paginated = False
    parent_column = "role_id"


class PermissionSetsStream(PipedriveStream):
    name = "permission_sets"
    refreshed_on_interval = True
    path = "/api/v1/permissionSets"
    paginated = False
    deleted_flags = ()
    carried_keys = ("id",)


class PermissionSetAssignmentsStream(PerParentStream):
    name = "permission_set_assignments"
    path = "/api/v1/permissionSets/{id}/assignments"
    parent_stream_type = PermissionSetsStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("permission_set_id", "user_id")


class UserPermissionsStream(PerParentStream):
    """What each user may do (one request per user)."""

    name = "user_permissions"
    path = "/api/v1/users/{id}/permissions"
    parent_stream_type = UsersStream
    primary_keys: t.ClassVar[tuple[str, ...]] = ("user_id",)
    paginated = False
    parent_column = "user_id"
