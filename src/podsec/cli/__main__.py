from podsec.cli.main import main

main()
