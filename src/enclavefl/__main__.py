"""`python -m enclavefl ...` is the `enclavefl` command (for a venv whose bin/ is not on PATH).

python -m enclavefl demo
"""

from enclavefl.cli.main import main

main()
