"""The CogniteClient both Python contenders use, pointed at the emulator the way
tests/sdk does (OAuth client credentials against its token endpoint). The same API in
cognite-sdk 8.22.0 (bench/.venv-sdk) and 7.94.2 (bench/.venv-extractor)."""

from __future__ import annotations

from cognite.client import ClientConfig, CogniteClient
from cognite.client.credentials import OAuthClientCredentials


def emulator_client(base_url: str) -> CogniteClient:
    base = base_url.rstrip("/")
    creds = OAuthClientCredentials(
        token_url=f"{base}/oauth2/token",
        client_id="cdf-syncd-demo",
        client_secret="demo-secret",
        scopes=[f"{base}/.default"],
    )
    return CogniteClient(
        ClientConfig(
            client_name="cdf-syncd-bench",
            project="demo",
            credentials=creds,
            base_url=base,
            timeout=60,
            file_transfer_timeout=600,
        )
    )
