from rez_cli.cli.app import run

run()
