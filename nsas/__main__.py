"""`python -m nsas` is the same as the `nsas` command."""

from nsas.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
