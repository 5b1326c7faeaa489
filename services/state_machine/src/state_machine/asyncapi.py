"""`python -m state_machine.asyncapi`: write the state machine's AsyncAPI document
(contracts/asyncapi/state_machine.yaml and .json).

The app is built with placeholder settings and never started: nothing is connected.
"""

from __future__ import annotations

from runtime.asyncapi import ContractDocument, contract_document, write
from state_machine.app import create_app
from state_machine.settings import Settings

NAME = "state_machine"


def document() -> ContractDocument:
    app, _ = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:9092",
                                 mongodb_url="mongodb://127.0.0.1:27017/"))
    return contract_document(app.schema.to_specification())


def main() -> None:
    write(NAME, document())


if __name__ == "__main__":
    main()
