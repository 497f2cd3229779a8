"""`python -m enclavefl ARGS` is the `enclavefl` command (the same `main()` the installed script calls).

python -m enclavefl demo
"""

from enclavefl.cli.main import main

if __name__ == "__main__":
    main()
