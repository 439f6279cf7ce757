#!/usr/bin/env python
from dashvault.cli import main

if __name__ == "__main__":
    main()
