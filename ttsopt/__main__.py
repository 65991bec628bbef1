from ttsopt.cli import main

main()
