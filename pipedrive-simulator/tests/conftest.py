"""Helpers shared by the simulator's tests (fixtures come from the pytest11 plugin)."""

import pytest
import requests


class Client:
    """A thin HTTP client bound to one simulator (real HTTP, the API token in a header)."""

    def __init__(self, handle):
        self.handle = handle
        self.session = requests.Session()
        self.session.headers["x-api-token"] = handle.api_token

    def get(self, path, **params):
        return self.session.get(self.handle.base_url + path, params=params, timeout=30)

    def ok(self, path, **params):
        resp = self.get(path, **params)
        assert resp.status_code == 200, f"{path} {params}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def read_all(self, path, **params):
        """Follow next_cursor to the end; return every record served."""
        records, cursor = [], None
        while True:
            query = dict(params)
            if cursor:
                query["cursor"] = cursor
            body = self.ok(path, **query)
            records.extend(body["data"])
            cursor = body["additional_data"]["next_cursor"]
            if cursor is None:
                return records

    def close(self):
        self.session.close()


@pytest.fixture
def client(pipedrive_simulator):
    c = Client(pipedrive_simulator)
    yield c
    c.close()
