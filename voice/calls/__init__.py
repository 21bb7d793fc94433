"""A call's life: its row, status callbacks, recordings, outbound placement."""
