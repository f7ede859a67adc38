"""``tap-pipedrive-webhooks register/list/remove`` against the simulator over real HTTP."""

from __future__ import annotations

import os
import subprocess

import requests
from tap_pipedrive.webhooks.payload import TAP_OBJECTS
from webhook_support import PASSWORD, USER, receiver_command

URL = "http://127.0.0.1:9/pipedrive/webhooks"


def _run(sim, command, *args, token=None):
    env = {
        "PATH": os.environ["PATH"],
        "PIPEBOARD_WEBHOOK_USER": USER,
        "PIPEBOARD_WEBHOOK_PASSWORD": PASSWORD,
    }
    return subprocess.run(
        [
            *receiver_command(),
            command,
            "--api-url",
            sim.base_url,
            "--api-token",
            token or sim.api_token,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _hooks(sim):
    resp = requests.get(
        sim.base_url + "/v1/webhooks", headers={"x-api-token": sim.api_token}, timeout=10
    )
    return resp.json()["data"]


def test_register_is_idempotent_and_remove_deletes_ours_only(pipedrive_simulator):
    sim = pipedrive_simulator
    foreign = requests.post(
        sim.base_url + "/v1/webhooks",
        headers={"x-api-token": sim.api_token},
        json={
            "subscription_url": "https://elsewhere.example.com/hook",
            "event_action": "*",
            "event_object": "deal",
            "name": "someone else's",
        },
        timeout=10,
    ).json()["data"]
    first = _run(sim, "register", "--subscription-url", URL)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(TAP_OBJECTS)
    assert "private address" in first.stderr  # Pipedrive's public-URL rule explained
    hooks = _hooks(sim)
    ours = [h for h in hooks if h["subscription_url"] == URL]
    assert sorted(h["event_object"] for h in ours) == sorted(TAP_OBJECTS)
    assert {(h["event_action"], h["version"], h["http_auth_user"]) for h in ours} == {
        ("*", "2.0", USER)
    }
    again = _run(sim, "register", "--subscription-url", URL)
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout
    assert again.stdout.count("exists") == len(TAP_OBJECTS)
    assert len(_hooks(sim)) == len(TAP_OBJECTS) + 1
    listed = _run(sim, "list")
    assert listed.stdout.count("ours") == len(TAP_OBJECTS)
    assert "elsewhere" not in listed.stdout
    removed = _run(sim, "remove")
    assert removed.stdout.count("removed") == len(TAP_OBJECTS)
    assert [h["id"] for h in _hooks(sim)] == [foreign["id"]]
    for result in (first, again, listed, removed):
        assert sim.api_token not in result.stdout + result.stderr
        assert PASSWORD not in result.stdout + result.stderr


def test_errors_explain_pipedrives_rules_without_the_token(pipedrive_simulator):
    sim = pipedrive_simulator
    for n in range(35):
        requests.post(
            sim.base_url + "/v1/webhooks",
            headers={"x-api-token": sim.api_token},
            json={
                "subscription_url": f"https://elsewhere.example.com/{n}",
                "event_action": "*",
                "event_object": "deal",
                "name": f"other {n}",
            },
            timeout=10,
        )
    full = _run(sim, "register", "--subscription-url", URL)
    assert full.returncode == 1
    assert "40 webhooks per user" in full.stderr
    bad_url = _run(sim, "register", "--subscription-url", "ftp://nowhere")
    assert bad_url.returncode == 1
    assert "publicly reachable URL" in bad_url.stderr
    wrong = _run(sim, "list", token="not-the-token-0123456789")
    assert wrong.returncode == 1
    assert "401" in wrong.stderr
    assert "not-the-token-0123456789" not in wrong.stderr + wrong.stdout
    assert sim.api_token not in full.stderr + bad_url.stderr
