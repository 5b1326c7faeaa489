from devinfra.cli import main

main()
