"""`nodus`: the user command line (subscribers, operators, DAO members, probers)."""
