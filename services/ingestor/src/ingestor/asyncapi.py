"""`python -m ingestor.asyncapi`: write the ingestor's AsyncAPI document
(contracts/asyncapi/ingestor.yaml and .json; the running ingestor serves it at /asyncapi).

The service is built as `python -m ingestor` builds it, with placeholder settings (no real
secret) and never started: nothing is connected.
"""

from __future__ import annotations

from pydantic import SecretStr

from ingestor.app import create_service
from ingestor.settings import Settings
from runtime.asyncapi import ContractDocument, contract_document, write

NAME = "ingestor"


def document() -> ContractDocument:
    app = create_service(Settings(
        kafka_bootstrap_servers="127.0.0.1:9092",
        mongodb_url="mongodb://127.0.0.1:27017/",
        tiktok_app_key="asyncapi-placeholder",
        tiktok_app_secret=SecretStr("asyncapi-placeholder"),
    ))
    return contract_document(app.state.asyncapi.to_specification())


def main() -> None:
    write(NAME, document())


if __name__ == "__main__":
    main()
