"""`python -m bench.peers`: run the peer benchmark (see bench/peers/run.py)."""

from bench.peers.run import main

raise SystemExit(main())
