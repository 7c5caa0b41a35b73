from perpbot.cli.entry import main

main()
