"""Users, pipelines and stages: small dictionaries read in full (and cached when configured)."""

from __future__ import annotations

from tap_pipedrive.client import PipedriveStream


class UsersStream(PipedriveStream):
    name = "users"
    path = "/api/v1/users"
    recents_item = "user"
    paginated = False
    cacheable = True
    carried_keys = ("id",)  # for user_permissions, also when users are not selected


class PipelinesStream(PipedriveStream):
    name = "pipelines"
    path = "/api/v2/pipelines"
    recents_item = "pipeline"
    cacheable = True


class StagesStream(PipedriveStream):
    name = "stages"
    path = "/api/v2/stages"
    recents_item = "stage"
    cacheable = True
