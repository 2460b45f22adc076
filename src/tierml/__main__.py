from tierml.cli.main import main

main()
