"""Where the bytes live: the local directory and S3 backends behind one interface."""
