from drehscheibe.cli import main

main()
