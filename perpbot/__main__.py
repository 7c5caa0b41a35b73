from perpbot.cli.app import main

main()
