"""What node agents use: the desired peer set (long-poll), heartbeats and metrics."""
