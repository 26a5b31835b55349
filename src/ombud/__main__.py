from ombud.cli.main import main

main()
