"""Private implementation modules behind the public ``infinium`` facades."""
