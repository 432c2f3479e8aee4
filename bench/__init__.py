"""desfs beside its peers on the same data: requests, throughput and memory (`make bench`)."""
