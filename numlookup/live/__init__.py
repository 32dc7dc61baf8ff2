"""Live reachability: sources that ask a home network's HLR whether a subscriber is reachable and where."""
