"""``python -m kaon``: the ``kaon`` command, for when the script is not on ``PATH``."""

from kaon.cli.main import main

if __name__ == "__main__":
    main()
