"""The `hf_hub` pytest fixture: a HubStandIn on 127.0.0.1 that huggingface_hub talks to.

huggingface_hub reads `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE` and friends once, when
`huggingface_hub.constants` is first imported, and some objects built at import keep the endpoint
(`hf_api.api`, `hf_file_system.hffs`, the hub origins that decide whether a redirect keeps the
token). Another test may have imported it first with other values, so the fixture sets the
environment *and* patches those import-time copies for the duration of the test (monkeypatch
restores them after). shardscan's own hf module reads `HF_ENDPOINT` per call and does not need
the patching; HfFileSystem and module-level helpers do.

`HF_TOKEN` is set to a fake token so a developer's saved login is never read or sent; tests
that need "no token" delete it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.servers.hfhub import HubStandIn

#: The token the fixture puts in HF_TOKEN; tests assert it never shows up in a message.
FAKE_TOKEN = "hf_standinFakeToken0123456789"


@pytest.fixture
def hf_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStandIn]:
    """A running stand-in hub (page size 1000, like the real one: set `hf_hub.page_size` for
    pagination tests) with huggingface_hub pointed at it."""
    hub = HubStandIn().start()
    home = tmp_path_factory.mktemp("hf-home")
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(home),
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DOWNLOAD_TIMEOUT": "10",
        "HF_HUB_ETAG_TIMEOUT": "10",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    _patch_import_time_copies(monkeypatch, hub.endpoint, str(home))
    try:
        yield hub
    finally:
        hub.stop()
        fs_module = sys.modules.get("huggingface_hub.hf_file_system")
        if fs_module is not None:  # instances cached with the stand-in's endpoint and dircache
            fs_module.HfFileSystem.clear_instance_cache()


def _patch_import_time_copies(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: str) -> None:
    import os

    from huggingface_hub import constants, hf_api, hf_file_system
    from huggingface_hub.utils import _http

    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": home,
        "HF_TOKEN_PATH": os.path.join(home, "token"),
        "HF_STORED_TOKENS_PATH": os.path.join(home, "stored_tokens"),
        "HF_HUB_CACHE": os.path.join(home, "hub"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DOWNLOAD_TIMEOUT": 10,
        "HF_HUB_ETAG_TIMEOUT": 10,
    }.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(_http, "_HUB_ORIGINS", frozenset({*_http._HUB_ORIGINS, _http._url_origin(endpoint)}))
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    hf_file_system.HfFileSystem.clear_instance_cache()
    monkeypatch.setattr(hf_file_system.hffs, "endpoint", endpoint)
    monkeypatch.setattr(hf_file_system.hffs._api, "endpoint", endpoint)
    hf_file_system.hffs.invalidate_cache()
