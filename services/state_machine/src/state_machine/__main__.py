import asyncio

from state_machine.app import create_app
from state_machine.settings import Settings

if __name__ == "__main__":
    asyncio.run(create_app(Settings()).run())
